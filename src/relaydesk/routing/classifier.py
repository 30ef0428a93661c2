"""Ticket category classifier: a small, pure, deterministic text model.

The model reads ``subject + " " + description`` (composed to NFC, lowercased) and
predicts one of a fixed set of labels with a probability for each.  Features are the
union of

* word unigrams and bigrams (TF-IDF, sublinear term frequency), and
* character n-grams of 2-5 within word boundaries (TF-IDF), which keep the model robust
  against typos ("recieved", "pasword", "refnd") and odd inflections,

fed to a multinomial logistic regression (lbfgs, ``class_weight="balanced"`` so a
workspace's lopsided history does not drown its small categories).  Logistic regression
gives usable probabilities without a separate calibration step; the top probability is
the prediction's confidence.

The *shipped* model is trained on ``data/labelled_tickets.csv`` the first time it is
asked for and cached for the life of the process.  A workspace can train its own model
on its resolved tickets (:meth:`CategoryClassifier.train`) and store it as bytes
(:meth:`CategoryClassifier.dumps` / :meth:`CategoryClassifier.loads`).

This module is pure: it imports nothing from Relaydesk, FastAPI or SQLAlchemy.
"""

from __future__ import annotations

import csv
import io
import json
import pickle
import re
import struct
import threading
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any

import numpy as np
import sklearn
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import confusion_matrix, precision_recall_fscore_support
from sklearn.model_selection import train_test_split
from sklearn.pipeline import FeatureUnion, Pipeline

__all__ = [
    "CATEGORIES",
    "DEFAULT_MIN_CONFIDENCE",
    "FORMAT_VERSION",
    "MIN_SAMPLES",
    "CategoryClassifier",
    "Prediction",
    "classify",
    "evaluate",
    "load_shipped_samples",
]

CATEGORIES: tuple[str, ...] = ("BILLING", "TECHNICAL", "RETURNS", "SHIPPING", "ACCOUNT", "GENERAL")

#: Below this top-class probability the shipped model's answer is not trusted and
#: :func:`classify` returns the fallback category instead.  Measured with 5-fold
#: cross-validation on the shipped data set (see docs/classifier.md): about 93 % of
#: tickets clear it (95 % of the English ones, 88 % of the Vietnamese ones) and those are
#: right about 92 % of the time; the ones held back are right only about 63 % of the
#: time, so a human triage queue does better on them.
DEFAULT_MIN_CONFIDENCE = 0.5

#: Version of the byte format written by :meth:`CategoryClassifier.dumps`.  Bump it
#: whenever the pipeline or the payload changes shape; older blobs are then refused
#: and the workspace's model must be retrained.
FORMAT_VERSION = 1

#: Fewest samples :meth:`CategoryClassifier.train` accepts.
MIN_SAMPLES = 20

_MAGIC = b"RDCLF"
_HEADER = struct.Struct(">5sHI")  # magic, format version, length of the JSON metadata
_DATA_PACKAGE = "relaydesk.routing.data"
_DATA_FILE = "labelled_tickets.csv"
_SPACES = re.compile(r"\s+")
_TRAIN_STEPS = 3


@dataclass(frozen=True)
class Prediction:
    """The model's answer for one ticket.

    ``confidence`` is the probability of ``category``; ``scores`` maps every label the
    model knows to its probability (they sum to 1).
    """

    category: str
    confidence: float
    scores: dict[str, float]


def _text(subject: str | None, description: str | None) -> str:
    # Composed first (NFC): a Vietnamese "ấ" may come as one character or as "a" and two
    # combining marks (macOS sends the latter), and they must be the same n-grams.
    text = unicodedata.normalize("NFC", f"{subject or ''} {description or ''}")
    return _SPACES.sub(" ", text).strip().lower()


def _pipeline() -> Pipeline:
    features = FeatureUnion([
        ("words", TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=1,
                                  token_pattern=r"(?u)\b\w+\b", dtype=np.float32)),
        ("chars", TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True,
                                  min_df=2, dtype=np.float32)),
    ])
    model = LogisticRegression(C=5.0, solver="newton-cg", max_iter=1000, class_weight="balanced")
    return Pipeline([("features", features), ("model", model)])


class _Scorer:
    """The fitted pipeline's ``predict_proba`` for one text, computed from its fitted parts.

    scikit-learn's fixed cost per call (input checks, a sparse matrix per vectorizer,
    the feature union's joblib dispatch, the stack) was ~2.7 ms of the ~3 ms a ticket's
    prediction took, against ~0.2 ms for the arithmetic: a few hundred n-grams looked up,
    weighted and dotted with six rows of coefficients.  The steps are TfidfVectorizer's
    (counts, ``1 + log`` for sublinear term frequency, times idf, L2 norm per vectorizer)
    and LogisticRegression's (softmax of the decision, or the logistic for two labels);
    a test holds the result to scikit-learn's own on the shipped data set.
    """

    __slots__ = ("_parts", "_coef", "_intercept")

    def __init__(self, pipeline: Pipeline) -> None:
        features, model = pipeline.named_steps["features"], pipeline.named_steps["model"]
        self._parts = []
        offset = 0
        for _name, vectorizer in features.transformer_list:
            self._parts.append((vectorizer.build_analyzer(), vectorizer.vocabulary_,
                                np.asarray(vectorizer.idf_, dtype=np.float64), offset))
            offset += len(vectorizer.vocabulary_)
        self._coef = np.ascontiguousarray(model.coef_.T, dtype=np.float64)  # one row per feature
        self._intercept = np.asarray(model.intercept_, dtype=np.float64)

    @classmethod
    def of(cls, pipeline: Pipeline) -> _Scorer | None:
        """A scorer when the pipeline is shaped as :func:`_pipeline` makes it, else None."""
        features, model = pipeline.named_steps.get("features"), pipeline.named_steps.get("model")
        if not isinstance(features, FeatureUnion) or features.transformer_weights or \
                not isinstance(model, LogisticRegression):
            return None
        for _name, vectorizer in features.transformer_list:
            if not isinstance(vectorizer, TfidfVectorizer) or not vectorizer.sublinear_tf or \
                    not vectorizer.use_idf or vectorizer.binary or vectorizer.norm != "l2":
                return None
        return cls(pipeline)

    def probabilities(self, text: str) -> np.ndarray:
        columns: list[np.ndarray] = []
        weights: list[np.ndarray] = []
        for analyze, vocabulary, idf, offset in self._parts:
            index: list[int] = []
            counts: list[int] = []
            for gram, n in Counter(analyze(text)).items():
                j = vocabulary.get(gram)
                if j is not None:
                    index.append(j)
                    counts.append(n)
            if not index:
                continue
            found = np.array(index)
            weight = (np.log(np.array(counts, dtype=np.float64)) + 1.0) * idf[found]
            weights.append(weight / np.sqrt(weight @ weight))
            columns.append(found + offset)
        decision = self._intercept.copy()
        if columns:
            decision += np.concatenate(weights) @ self._coef[np.concatenate(columns)]
        if decision.size == 1:  # two labels: one decision, the logistic of it
            positive = 1.0 / (1.0 + np.exp(-decision[0]))
            return np.array([1.0 - positive, positive])
        exp = np.exp(decision - decision.max())
        return exp / exp.sum()


class CategoryClassifier:
    """A trained category model.  Build one with :meth:`train`, :meth:`shipped` or :meth:`loads`."""

    def __init__(self, pipeline: Pipeline, *, n_samples: int) -> None:
        self._pipeline = pipeline
        self._scorer = _Scorer.of(pipeline)
        self._labels: tuple[str, ...] = tuple(str(c) for c in pipeline.named_steps["model"].classes_)
        self._n_samples = n_samples

    # ------------------------------------------------------------------ building

    @classmethod
    def train(cls, samples: Iterable[tuple[str, str, str]], *,
              progress: Callable[[int, int], None] | None = None) -> CategoryClassifier:
        """Train on ``(subject, description, label)`` triples.

        Labels are any non-empty strings (a workspace's own category names, compared
        after stripping surrounding whitespace).  ``progress(done, total)`` is called as
        the work advances: ``(0, 3)`` at the start, then after checking the data, after
        building the features and after fitting the model.

        Raises ``ValueError`` when there are fewer than :data:`MIN_SAMPLES` samples,
        fewer than two distinct labels, or a malformed sample.
        """
        report = progress or (lambda done, total: None)
        report(0, _TRAIN_STEPS)
        texts: list[str] = []
        labels: list[str] = []
        for i, sample in enumerate(samples):
            try:
                subject, description, label = sample
            except (TypeError, ValueError):
                raise ValueError(f"sample {i} is not a (subject, description, label) triple") from None
            if not isinstance(label, str) or not label.strip():  # bad data: ValueError, not TypeError
                raise ValueError(f"sample {i} has an empty or non-string label: {label!r}")
            if not isinstance(subject, (str, type(None))) or not isinstance(description, (str, type(None))):
                raise ValueError(f"sample {i}: subject and description must be strings")  # noqa: TRY004
            texts.append(_text(subject, description))
            labels.append(label.strip())
        if len(texts) < MIN_SAMPLES:
            raise ValueError(f"need at least {MIN_SAMPLES} labelled tickets to train a classifier, got {len(texts)}")
        distinct = sorted(set(labels))
        if len(distinct) < 2:
            raise ValueError(f"need tickets from at least 2 categories to train a classifier, got {distinct}")
        report(1, _TRAIN_STEPS)

        pipeline = _pipeline()
        matrix = pipeline.named_steps["features"].fit_transform(texts)
        report(2, _TRAIN_STEPS)
        pipeline.named_steps["model"].fit(matrix, labels)
        report(3, _TRAIN_STEPS)
        return cls(pipeline, n_samples=len(texts))

    @classmethod
    def shipped(cls) -> CategoryClassifier:
        """The model trained on the bundled data set; trained once per process, then shared."""
        global _shipped
        if _shipped is None:
            with _shipped_lock:
                if _shipped is None:
                    _shipped = cls.train(load_shipped_samples())
        return _shipped

    # ------------------------------------------------------------------ using

    @property
    def labels(self) -> tuple[str, ...]:
        """The labels this model can predict, sorted."""
        return self._labels

    @property
    def n_samples(self) -> int:
        """How many samples the model was trained on."""
        return self._n_samples

    def predict(self, subject: str, description: str) -> Prediction:
        return self.predict_many([(subject, description)])[0]

    def predict_many(self, tickets: Sequence[tuple[str, str]]) -> list[Prediction]:
        if not tickets:
            return []
        texts = [_text(s, d) for s, d in tickets]
        scorer = self._scorer
        predictions = []
        for probabilities in (map(scorer.probabilities, texts) if scorer else self._pipeline.predict_proba(texts)):
            best = int(np.argmax(probabilities))
            scores = {label: float(p) for label, p in zip(self._labels, probabilities)}
            predictions.append(Prediction(category=self._labels[best], confidence=float(probabilities[best]),
                                          scores=scores))
        return predictions

    def __repr__(self) -> str:
        return f"CategoryClassifier(labels={list(self._labels)}, n_samples={self._n_samples})"

    # ------------------------------------------------------------------ storing

    def dumps(self) -> bytes:
        """Serialise the model: a small header (format version, metadata) and a pickle.

        Only feed the result back to :meth:`loads` from storage this service controls:
        unpickling untrusted bytes can run arbitrary code.
        """
        meta = json.dumps({"sklearn": sklearn.__version__, "labels": list(self._labels),
                           "n_samples": self._n_samples}).encode()
        body = pickle.dumps(self._pipeline, protocol=pickle.HIGHEST_PROTOCOL)
        return _HEADER.pack(_MAGIC, FORMAT_VERSION, len(meta)) + meta + body

    @classmethod
    def loads(cls, data: bytes) -> CategoryClassifier:
        """Rebuild a model written by :meth:`dumps`.

        Raises ``ValueError`` — before unpickling anything — when the bytes are not a
        Relaydesk classifier, were written in another :data:`FORMAT_VERSION`, or were
        written under another scikit-learn version (pickles are not portable across
        scikit-learn releases); the caller should then retrain or use :meth:`shipped`.
        """
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise ValueError("classifier data must be bytes")  # noqa: TRY004 - one error type for bad data
        data = bytes(data)
        if len(data) < _HEADER.size:
            raise ValueError("not a Relaydesk classifier: data too short")
        magic, version, meta_len = _HEADER.unpack_from(data)
        if magic != _MAGIC:
            raise ValueError("not a Relaydesk classifier: bad header")
        if version != FORMAT_VERSION:
            raise ValueError(f"classifier format version {version} is not supported "
                             f"(this build reads version {FORMAT_VERSION}); retrain the model")
        try:
            meta = json.loads(data[_HEADER.size:_HEADER.size + meta_len])
        except ValueError:
            raise ValueError("not a Relaydesk classifier: unreadable metadata") from None
        if meta.get("sklearn") != sklearn.__version__:
            raise ValueError(f"classifier was saved with scikit-learn {meta.get('sklearn')}, this process runs "
                             f"{sklearn.__version__}; retrain the model")
        try:
            pipeline = pickle.loads(data[_HEADER.size + meta_len:])
        except Exception as exc:  # noqa: BLE001 - unpickling junk can raise almost anything
            raise ValueError(f"classifier data is corrupted: {exc}") from None
        if not isinstance(pipeline, Pipeline):
            raise ValueError("classifier data does not hold a model pipeline")  # noqa: TRY004
        model = cls(pipeline, n_samples=int(meta.get("n_samples", 0)))
        if list(model.labels) != meta.get("labels"):
            raise ValueError("classifier data is inconsistent: labels do not match")
        return model


_shipped: CategoryClassifier | None = None
_shipped_lock = threading.Lock()


def classify(model: CategoryClassifier, subject: str, description: str, *,
             min_confidence: float, fallback: str, prediction: Prediction | None = None) -> tuple[str, float, str]:
    """Pick a category for a ticket, or ``fallback`` when the model is not sure enough.

    Returns ``(category, confidence, reason)``; ``confidence`` is always the model's own
    confidence in its top label, also when falling back.  A prediction whose confidence
    is exactly ``min_confidence`` is accepted.  ``fallback`` need not be one of the
    model's labels (e.g. a workspace's "Triage" category).
    """
    if not 0.0 <= min_confidence <= 1.0:
        raise ValueError(f"min_confidence must be between 0 and 1, got {min_confidence}")
    if not isinstance(fallback, str) or not fallback.strip():
        raise ValueError("fallback must be a non-empty category name")
    if prediction is None:  # else made beforehand, for a batch (``predict_many``)
        prediction = model.predict(subject, description)
    if prediction.confidence >= min_confidence:
        return prediction.category, prediction.confidence, f"model: {prediction.category} ({prediction.confidence:.2f})"
    return fallback, prediction.confidence, (
        f"low confidence ({prediction.confidence:.2f} < {min_confidence:.2f}): fell back to {fallback}"
        f" (model's best guess: {prediction.category})")


def load_shipped_samples(language: str | None = None) -> list[tuple[str, str, str]]:
    """The bundled labelled data set as ``(subject, description, category)`` triples; with
    ``language`` ("en" or "vi"), only the tickets written in it."""
    text = resources.files(_DATA_PACKAGE).joinpath(_DATA_FILE).read_text(encoding="utf-8")
    reader = csv.DictReader(io.StringIO(text, newline=""))
    return [(row["subject"], row["description"], row["category"]) for row in reader
            if language is None or row["language"] == language]


def evaluate(samples: Iterable[tuple[str, str, str]], *, test_fraction: float = 0.2, seed: int = 7,
             baseline: CategoryClassifier | None = None,
             train_also: Iterable[tuple[str, str, str]] = ()) -> dict[str, Any]:
    """Train on a stratified part of ``samples`` and score the held-out rest.

    ``train_also`` are trained on as well but never held out, so one part of a data set
    (say its English tickets) can be scored by a model that learnt from all of it.

    Returns ``{"accuracy", "macro_f1", "per_class": {label: {"precision", "recall", "f1",
    "support"}}, "confusion": {true: {predicted: count}}, "train_size", "test_size"}``,
    and with a ``baseline`` model, ``"baseline_accuracy"``: how it does on the same
    held-out tickets (labels compared case-insensitively, so the shipped "BILLING" counts
    for a workspace's "Billing").
    """
    rows = list(samples)
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be between 0 and 1, got {test_fraction}")
    labels = [str(r[2]).strip() for r in rows]
    try:
        train_rows, test_rows = train_test_split(rows, test_size=test_fraction, random_state=seed,
                                                 stratify=labels, shuffle=True)
    except ValueError as exc:
        raise ValueError(f"cannot make a stratified split of {len(rows)} samples: {exc}") from None
    train_rows = [*train_rows, *train_also]
    model = CategoryClassifier.train(train_rows)
    truth = [r[2].strip() for r in test_rows]
    predicted = [model.predict(r[0], r[1]).category for r in test_rows]
    names = sorted(set(truth) | set(model.labels))
    precision, recall, f1, support = precision_recall_fscore_support(
        truth, predicted, labels=names, zero_division=0)
    matrix = confusion_matrix(truth, predicted, labels=names)
    correct = sum(t == p for t, p in zip(truth, predicted))
    compared = {}
    if baseline is not None:
        hits = sum(t.casefold() == baseline.predict(r[0], r[1]).category.casefold() for t, r in zip(truth, test_rows))
        compared["baseline_accuracy"] = hits / len(truth)
    return {
        **compared,
        "accuracy": correct / len(truth),
        "macro_f1": float(np.mean(f1)),
        "per_class": {
            name: {"precision": float(p), "recall": float(r), "f1": float(f), "support": int(s)}
            for name, p, r, f, s in zip(names, precision, recall, f1, support)
        },
        "confusion": {t: {p: int(matrix[i, j]) for j, p in enumerate(names)} for i, t in enumerate(names)},
        "train_size": len(train_rows),
        "test_size": len(test_rows),
    }

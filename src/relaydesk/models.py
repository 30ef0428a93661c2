"""Every table, imported in one place for Alembic and the schema-drift test."""

from relaydesk.agents import models as agents_models  # noqa: F401
from relaydesk.channels import models as channels_models  # noqa: F401
from relaydesk.core import audit, outbox  # noqa: F401
from relaydesk.core.db import Base
from relaydesk.customers import models as customers_models  # noqa: F401
from relaydesk.identity import models as identity_models  # noqa: F401
from relaydesk.notifications import models as notifications_models  # noqa: F401
from relaydesk.routing import models as routing_models  # noqa: F401
from relaydesk.sla import models as sla_models  # noqa: F401
from relaydesk.tenancy import models as tenancy_models  # noqa: F401
from relaydesk.tickets import models as tickets_models  # noqa: F401

metadata = Base.metadata

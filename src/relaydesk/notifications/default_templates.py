"""The built-in notification emails and the localised words around them, in English and Vietnamese.

Plain data only: `relaydesk.notifications.templates` compiles and renders it.  They are Python strings
rather than files so they ship with the package without package-data entries.  Each template is what an
admin sees (and can start editing from) in the template editor, so keep them short and readable.

The default templates must render with any context that has the documented variables (and with missing
optional ones), so optional values are guarded with `{% if %}` or `or`; `None` renders as empty anyway.
`status_label`, `priority_label` and `clock_label` are filters that localise codes to the recipient's locale.
"""

from __future__ import annotations

# --- Snippets shared by several templates (concatenated, so the result is one plain template) -------------

_TAG = "{% if ticket.reference %}[{{ ticket.reference }}] {% endif %}"

_HI_EN = "Hi{% if recipient_name %} {{ recipient_name }}{% endif %},\n\n"
_HI_EN_HTML = "<p>Hi{% if recipient_name %} {{ recipient_name }}{% endif %},</p>\n"
_HI_VI = "Xin chào{% if recipient_name %} {{ recipient_name }}{% endif %},\n\n"
_HI_VI_HTML = "<p>Xin chào{% if recipient_name %} {{ recipient_name }}{% endif %},</p>\n"

_REF = "{{ ticket.reference }} “{{ ticket.subject }}”"
_REF_HTML = "<strong>{{ ticket.reference }}</strong> “{{ ticket.subject }}”"

_SIGN_EN = "\nKind regards,\nThe support team{% if workspace_name %} at {{ workspace_name }}{% endif %}\n"
_SIGN_EN_HTML = "<p>Kind regards,<br>The support team{% if workspace_name %} at {{ workspace_name }}{% endif %}</p>\n"
_SIGN_VI = "\nTrân trọng,\nĐội ngũ hỗ trợ{% if workspace_name %} {{ workspace_name }}{% endif %}\n"
_SIGN_VI_HTML = "<p>Trân trọng,<br>Đội ngũ hỗ trợ{% if workspace_name %} {{ workspace_name }}{% endif %}</p>\n"

_VIEW_EN = "\n{% if ticket.url %}\nView your request: {{ ticket.url }}\n{% endif %}\n"
_VIEW_EN_HTML = '{% if ticket.url %}<p><a href="{{ ticket.url }}">View your request</a></p>{% endif %}\n'
_VIEW_VI = "\n{% if ticket.url %}\nXem yêu cầu: {{ ticket.url }}\n{% endif %}\n"
_VIEW_VI_HTML = '{% if ticket.url %}<p><a href="{{ ticket.url }}">Xem yêu cầu</a></p>{% endif %}\n'

_OPEN_EN = "\n{% if ticket.url %}\nOpen the ticket: {{ ticket.url }}\n{% endif %}\n"
_OPEN_EN_HTML = '{% if ticket.url %}<p><a href="{{ ticket.url }}">Open the ticket</a></p>{% endif %}\n'
_OPEN_VI = "\n{% if ticket.url %}\nMở phiếu yêu cầu: {{ ticket.url }}\n{% endif %}\n"
_OPEN_VI_HTML = '{% if ticket.url %}<p><a href="{{ ticket.url }}">Mở phiếu yêu cầu</a></p>{% endif %}\n'

# Agents decide whether to act from these two lines, so every agent email about one ticket shows them.
_DETAILS_EN = (
    "{% if ticket.requester_name %}Requester: {{ ticket.requester_name }}\n{% endif %}"
    "{% if ticket.priority %}Priority: {{ ticket.priority|priority_label }}\n{% endif %}"
)
_DETAILS_EN_HTML = (
    "<ul>\n"
    "{% if ticket.requester_name %}<li>Requester: {{ ticket.requester_name }}</li>{% endif %}\n"
    "{% if ticket.priority %}<li>Priority: {{ ticket.priority|priority_label }}</li>{% endif %}\n"
    "</ul>\n"
)
_DETAILS_VI = (
    "{% if ticket.requester_name %}Người yêu cầu: {{ ticket.requester_name }}\n{% endif %}"
    "{% if ticket.priority %}Mức ưu tiên: {{ ticket.priority|priority_label }}\n{% endif %}"
)
_DETAILS_VI_HTML = (
    "<ul>\n"
    "{% if ticket.requester_name %}<li>Người yêu cầu: {{ ticket.requester_name }}</li>{% endif %}\n"
    "{% if ticket.priority %}<li>Mức ưu tiên: {{ ticket.priority|priority_label }}</li>{% endif %}\n"
    "</ul>\n"
)


def _t(subject: str, text: str, html: str) -> dict[str, str]:
    return {"subject": subject, "text": text, "html": html}


# --- English ---------------------------------------------------------------------------------------------

_EN: dict[str, dict[str, str]] = {
    "ticket_created": _t(
        _TAG + "We received your request: {{ ticket.subject }}",
        _HI_EN + "We received your request " + _REF + ". Our team will get back to you as soon as possible.\n\n"
        "To add information, simply reply to this email; your reply is added to your request.\n"
        + _VIEW_EN + _SIGN_EN,
        _HI_EN_HTML + "<p>We received your request " + _REF_HTML
        + ". Our team will get back to you as soon as possible.</p>\n"
        "<p>To add information, simply reply to this email; your reply is added to your request.</p>\n"
        + _VIEW_EN_HTML + _SIGN_EN_HTML,
    ),
    "assigned": _t(
        _TAG + "Assigned to you: {{ ticket.subject }}",
        _HI_EN + "{% if actor_name %}{{ actor_name }} assigned{% else %}Automatic routing assigned{% endif %}"
        " ticket " + _REF + " to you.\n\n" + _DETAILS_EN + _OPEN_EN,
        _HI_EN_HTML + "<p>{% if actor_name %}{{ actor_name }} assigned{% else %}Automatic routing assigned"
        "{% endif %} ticket " + _REF_HTML + " to you.</p>\n" + _DETAILS_EN_HTML + _OPEN_EN_HTML,
    ),
    "reply_to_customer": _t(
        _TAG + "New reply: {{ ticket.subject }}",
        _HI_EN + '{{ message.author_name or "Our support team" }} replied to your request ' + _REF + ":\n\n"
        "{{ message.text }}\n\n"
        "Reply to this email to answer; your reply is added to your request.\n" + _VIEW_EN + _SIGN_EN,
        _HI_EN_HTML + '<p><strong>{{ message.author_name or "Our support team" }}</strong> replied to your request '
        + _REF_HTML + ":</p>\n"
        "<blockquote>{{ message.html|safe }}</blockquote>\n"
        "<p>Reply to this email to answer; your reply is added to your request.</p>\n"
        + _VIEW_EN_HTML + _SIGN_EN_HTML,
    ),
    "reply_to_agent": _t(
        _TAG + 'New reply from {{ message.author_name or ticket.requester_name or "the customer" }}: '
        "{{ ticket.subject }}",
        _HI_EN + '{{ message.author_name or ticket.requester_name or "The customer" }} replied on ticket '
        + _REF + ":\n\n{{ message.text }}\n\n" + _DETAILS_EN + _OPEN_EN,
        _HI_EN_HTML + '<p><strong>{{ message.author_name or ticket.requester_name or "The customer" }}</strong>'
        " replied on ticket " + _REF_HTML + ":</p>\n"
        "<blockquote>{{ message.html|safe }}</blockquote>\n" + _DETAILS_EN_HTML + _OPEN_EN_HTML,
    ),
    "status_changed": _t(
        _TAG + "Your request is now: {{ new_status|status_label }}",
        _HI_EN + "The status of your request " + _REF
        + "{% if old_status %} changed from “{{ old_status|status_label }}” to{% else %} is now{% endif %}"
        " “{{ new_status|status_label }}”.\n\n"
        "If you have anything to add, reply to this email; your reply is added to your request.\n"
        + _VIEW_EN + _SIGN_EN,
        _HI_EN_HTML + "<p>The status of your request " + _REF_HTML
        + "{% if old_status %} changed from “{{ old_status|status_label }}” to{% else %} is now{% endif %}"
        " <strong>“{{ new_status|status_label }}”</strong>.</p>\n"
        "<p>If you have anything to add, reply to this email; your reply is added to your request.</p>\n"
        + _VIEW_EN_HTML + _SIGN_EN_HTML,
    ),
    "sla_warning": _t(
        _TAG + "SLA warning: {{ clock|clock_label }} due {{ due_at }}",
        _HI_EN + "The {{ clock|clock_label }} target for ticket " + _REF + " is due {{ due_at }}"
        "{% if percent %} ({{ percent }} % of its time used){% endif %}.\n\n" + _DETAILS_EN + _OPEN_EN,
        _HI_EN_HTML + "<p>The {{ clock|clock_label }} target for ticket " + _REF_HTML
        + " is due <strong>{{ due_at }}</strong>{% if percent %} ({{ percent }} % of its time used){% endif %}.</p>\n"
        + _DETAILS_EN_HTML + _OPEN_EN_HTML,
    ),
    "sla_critical": _t(
        _TAG + "SLA critical: {{ clock|clock_label }} due {{ due_at }}",
        _HI_EN + "The {{ clock|clock_label }} target for ticket " + _REF + " is about to be missed: it is due "
        "{{ due_at }}{% if percent %} ({{ percent }} % of its time used){% endif %}. Please act on it now.\n\n"
        + _DETAILS_EN + _OPEN_EN,
        _HI_EN_HTML + "<p>The {{ clock|clock_label }} target for ticket " + _REF_HTML
        + " is about to be missed: it is due <strong>{{ due_at }}</strong>{% if percent %} ({{ percent }} % of its "
        "time used){% endif %}. Please act on it now.</p>\n"
        + _DETAILS_EN_HTML + _OPEN_EN_HTML,
    ),
    "sla_breached": _t(
        _TAG + "SLA breached: {{ clock|clock_label }} was due {{ due_at }}",
        _HI_EN + "The {{ clock|clock_label }} target for ticket " + _REF + " was missed: it was due {{ due_at }}.\n\n"
        + _DETAILS_EN + _OPEN_EN,
        _HI_EN_HTML + "<p>The {{ clock|clock_label }} target for ticket " + _REF_HTML
        + " was missed: it was due <strong>{{ due_at }}</strong>.</p>\n" + _DETAILS_EN_HTML + _OPEN_EN_HTML,
    ),
    "escalated": _t(
        _TAG + "Escalated to level {{ level }}: {{ ticket.subject }}",
        _HI_EN + "Ticket " + _REF + " was escalated to level {{ level }}.\n\n"
        "{% if reason %}Reason: {{ reason }}\n\n{% endif %}" + _DETAILS_EN + _OPEN_EN,
        _HI_EN_HTML + "<p>Ticket " + _REF_HTML + " was escalated to <strong>level {{ level }}</strong>.</p>\n"
        "{% if reason %}<p>Reason: {{ reason }}</p>{% endif %}\n" + _DETAILS_EN_HTML + _OPEN_EN_HTML,
    ),
    "queue_waiting": _t(
        _TAG + "Waiting {{ waited_minutes }} min for an agent: {{ ticket.subject }}",
        _HI_EN + "Ticket " + _REF + " has waited {{ waited_minutes }} minutes"
        "{% if team_name %} in the {{ team_name }} queue{% endif %} without an agent picking it up.\n\n"
        + _DETAILS_EN + _OPEN_EN,
        _HI_EN_HTML + "<p>Ticket " + _REF_HTML + " has waited <strong>{{ waited_minutes }} minutes</strong>"
        "{% if team_name %} in the {{ team_name }} queue{% endif %} without an agent picking it up.</p>\n"
        + _DETAILS_EN_HTML + _OPEN_EN_HTML,
    ),
    "daily_summary": _t(
        "Daily summary{% if team_name %} for {{ team_name }}{% endif %}: {{ date }}",
        _HI_EN + "Here is what happened{% if team_name %} in {{ team_name }}{% endif %} on {{ date }}:\n\n"
        "- New tickets: {{ counts.created or 0 }}\n"
        "- Resolved: {{ counts.resolved or 0 }}\n"
        "- Still open: {{ counts.open or 0 }}\n"
        "- SLA breached: {{ counts.breached or 0 }}\n"
        "- Waiting in queue: {{ counts.waiting_in_queue or 0 }}\n"
        "{% if oldest %}\n\nOldest open tickets:\n"
        "{% for t in oldest %}\n"
        "- {{ t.reference }} “{{ t.subject }}”{% if t.priority %} ({{ t.priority|priority_label }}){% endif %}"
        "{% if t.url %}: {{ t.url }}{% endif +%}\n"
        "{% endfor %}\n"
        "{% endif %}\n",
        _HI_EN_HTML + "<p>Here is what happened{% if team_name %} in <strong>{{ team_name }}</strong>{% endif %}"
        " on {{ date }}:</p>\n"
        "<ul>\n"
        "<li>New tickets: <strong>{{ counts.created or 0 }}</strong></li>\n"
        "<li>Resolved: <strong>{{ counts.resolved or 0 }}</strong></li>\n"
        "<li>Still open: <strong>{{ counts.open or 0 }}</strong></li>\n"
        "<li>SLA breached: <strong>{{ counts.breached or 0 }}</strong></li>\n"
        "<li>Waiting in queue: <strong>{{ counts.waiting_in_queue or 0 }}</strong></li>\n"
        "</ul>\n"
        "{% if oldest %}\n<p><strong>Oldest open tickets</strong></p>\n<ul>\n"
        "{% for t in oldest %}\n"
        '<li>{% if t.url %}<a href="{{ t.url }}">{{ t.reference }}</a>{% else %}{{ t.reference }}{% endif %}'
        " “{{ t.subject }}”{% if t.priority %} ({{ t.priority|priority_label }}){% endif %}</li>\n"
        "{% endfor %}\n"
        "</ul>\n{% endif %}\n",
    ),
    "digest": _t(
        '{{ count }} new update{{ "" if count == 1 else "s" }} on '
        '{% if groups|length == 1 and groups[0].ticket %}“{{ groups[0].ticket.subject }}”{% else %}your tickets'
        '{% endif %}',
        _HI_EN + 'You have {{ count }} new update{{ "" if count == 1 else "s" }}:\n'
        "{% for group in groups %}\n\n"
        "{% if group.ticket %}{{ group.ticket.reference }} “{{ group.ticket.subject }}”{% else %}Other updates"
        '{% endif %} ({{ group.updates|length }} update{{ "" if group.updates|length == 1 else "s" }})\n'
        "{% for item in group.updates %}\n"
        "- {% if item.at %}{{ item.at }} · {% endif %}{{ item.title }}{% if item.text %}: {{ item.text }}{% endif +%}\n"
        "{% endfor %}\n"
        "{% if group.ticket and group.ticket.url %}{{ group.ticket.url }}\n{% endif %}"
        "{% endfor %}\n",
        _HI_EN_HTML + '<p>You have <strong>{{ count }}</strong> new update{{ "" if count == 1 else "s" }}:</p>\n'
        "{% for group in groups %}\n"
        "<h3>{% if group.ticket %}"
        '{% if group.ticket.url %}<a href="{{ group.ticket.url }}">{{ group.ticket.reference }}</a>'
        "{% else %}{{ group.ticket.reference }}{% endif %} “{{ group.ticket.subject }}”"
        "{% else %}Other updates{% endif %}"
        ' ({{ group.updates|length }} update{{ "" if group.updates|length == 1 else "s" }})</h3>\n'
        "<ul>\n"
        "{% for item in group.updates %}\n"
        "<li>{% if item.at %}{{ item.at }} · {% endif %}<strong>{{ item.title }}</strong>"
        "{% if item.html %}:<blockquote>{{ item.html|safe }}</blockquote>"
        "{% elif item.text %}: {{ item.text }}{% endif %}</li>\n"
        "{% endfor %}\n"
        "</ul>\n"
        "{% endfor %}\n",
    ),
    "account_changed": _t(
        "Your {{ 'email address' if change == 'email' else 'password' }}{% if workspace_name %} for "
        "{{ workspace_name }}{% endif %} was changed",
        _HI_EN + "{% if change == 'email' %}Our support team changed the email address of your account"
        "{% if workspace_name %} with {{ workspace_name }}{% endif %} from {{ old_email }} to {{ new_email }}. "
        "Emails about your requests go to {{ new_email }} from now on.\n\n"
        "If you did not ask for this, reply to this email or contact our support team at once.\n"
        "{% else %}Your password was changed{% if workspace_name %} for {{ workspace_name }}{% endif %}. "
        "Every other session signed in with the old one has been ended.\n\n"
        "If this was you, there is nothing more to do.\n\n"
        "If it was not, someone else knows or set your password: ask for a new one"
        "{% if reset_url %} at {{ reset_url }}{% endif %} and tell our support team.\n{% endif %}",
        _HI_EN_HTML + "{% if change == 'email' %}<p>Our support team changed the email address of your account"
        "{% if workspace_name %} with <strong>{{ workspace_name }}</strong>{% endif %} from {{ old_email }} to "
        "{{ new_email }}. Emails about your requests go to {{ new_email }} from now on.</p>\n"
        "<p>If you did not ask for this, reply to this email or contact our support team at once.</p>\n"
        "{% else %}<p>Your password was changed{% if workspace_name %} for <strong>{{ workspace_name }}</strong>"
        "{% endif %}. Every other session signed in with the old one has been ended.</p>\n"
        "<p>If this was you, there is nothing more to do.</p>\n"
        "<p>If it was not, someone else knows or set your password: "
        '{% if reset_url %}<a href="{{ reset_url }}">ask for a new one</a>{% else %}ask for a new one{% endif %} '
        "and tell our support team.</p>\n{% endif %}",
    ),
    "mailbox_claim_removed": _t(
        "{{ address }} is no longer one of your support addresses",
        _HI_EN + "Your workspace{% if workspace_name %} {{ workspace_name }}{% endif %} had added {{ address }} "
        "as a support address, but had not verified it. Then another workspace verified it, proving that it "
        "receives the address's mail, so the address is now that workspace's: it was removed from your "
        "mailboxes, and its mail no longer comes to you.\n\n"
        "What you can do:\n"
        "- Add the address you do receive support mail at as a mailbox and verify it, with the verification "
        "email Relaydesk sends to it: only a verified address stays yours.\n"
        "- If {{ address }} is yours and you did not expect this, contact the support of the service you use "
        "Relaydesk through.\n",
        _HI_EN_HTML + "<p>Your workspace{% if workspace_name %} <strong>{{ workspace_name }}</strong>{% endif %} "
        "had added <strong>{{ address }}</strong> as a support address, but had not verified it. Then another "
        "workspace verified it, proving that it receives the address's mail, so the address is now that "
        "workspace's: it was removed from your mailboxes, and its mail no longer comes to you.</p>\n"
        "<p>What you can do:</p>\n<ul>\n"
        "<li>Add the address you do receive support mail at as a mailbox and verify it, with the verification "
        "email Relaydesk sends to it: only a verified address stays yours.</li>\n"
        "<li>If {{ address }} is yours and you did not expect this, contact the support of the service you use "
        "Relaydesk through.</li>\n</ul>\n",
    ),
    "digest_reply_refused": _t(
        "Not added to any ticket: “{{ subject }}”",
        _HI_EN + "Your email “{{ subject }}” answered an email about several tickets, so Relaydesk cannot tell "
        "which ticket it is for: it was not added to any, nor sent to any customer.\n\n"
        "To answer a ticket by email, reply to the email about that one ticket (its subject has the ticket's "
        "number, such as [T-000123]), or answer in the app{% if app_url %}: {{ app_url }}{% endif %}.\n",
        _HI_EN_HTML + "<p>Your email “{{ subject }}” answered an email about several tickets, so Relaydesk "
        "cannot tell which ticket it is for: it was not added to any, nor sent to any customer.</p>\n"
        "<p>To answer a ticket by email, reply to the email about that one ticket (its subject has the "
        "ticket's number, such as [T-000123]), or answer in "
        '{% if app_url %}<a href="{{ app_url }}">the app</a>{% else %}the app{% endif %}.</p>\n',
    ),
}

# --- Vietnamese ------------------------------------------------------------------------------------------
# Customers read "yêu cầu" (request); agents read "phiếu yêu cầu" (ticket), as Vietnamese helpdesks say it.

_VI: dict[str, dict[str, str]] = {
    "ticket_created": _t(
        _TAG + "Chúng tôi đã nhận được yêu cầu của bạn: {{ ticket.subject }}",
        _HI_VI + "Chúng tôi đã nhận được yêu cầu của bạn: " + _REF + ". Đội ngũ hỗ trợ sẽ phản hồi bạn trong "
        "thời gian sớm nhất.\n\n"
        "Nếu cần bổ sung thông tin, bạn chỉ cần trả lời email này; nội dung trả lời sẽ được thêm vào yêu cầu "
        "của bạn.\n" + _VIEW_VI + _SIGN_VI,
        _HI_VI_HTML + "<p>Chúng tôi đã nhận được yêu cầu của bạn: " + _REF_HTML + ". Đội ngũ hỗ trợ sẽ phản hồi "
        "bạn trong thời gian sớm nhất.</p>\n"
        "<p>Nếu cần bổ sung thông tin, bạn chỉ cần trả lời email này; nội dung trả lời sẽ được thêm vào yêu cầu "
        "của bạn.</p>\n" + _VIEW_VI_HTML + _SIGN_VI_HTML,
    ),
    "assigned": _t(
        _TAG + "Phiếu yêu cầu được giao cho bạn: {{ ticket.subject }}",
        _HI_VI + "{% if actor_name %}{{ actor_name }} đã giao phiếu yêu cầu " + _REF + " cho bạn."
        "{% else %}Phiếu yêu cầu " + _REF + " đã được tự động giao cho bạn.{% endif +%}\n\n"
        + _DETAILS_VI + _OPEN_VI,
        _HI_VI_HTML + "<p>{% if actor_name %}{{ actor_name }} đã giao phiếu yêu cầu " + _REF_HTML + " cho bạn."
        "{% else %}Phiếu yêu cầu " + _REF_HTML + " đã được tự động giao cho bạn.{% endif %}</p>\n"
        + _DETAILS_VI_HTML + _OPEN_VI_HTML,
    ),
    "reply_to_customer": _t(
        _TAG + "Phản hồi mới: {{ ticket.subject }}",
        _HI_VI + '{{ message.author_name or "Đội ngũ hỗ trợ" }} đã trả lời yêu cầu ' + _REF + " của bạn:\n\n"
        "{{ message.text }}\n\n"
        "Bạn có thể trả lời trực tiếp email này; nội dung trả lời sẽ được thêm vào yêu cầu của bạn.\n"
        + _VIEW_VI + _SIGN_VI,
        _HI_VI_HTML + '<p><strong>{{ message.author_name or "Đội ngũ hỗ trợ" }}</strong> đã trả lời yêu cầu '
        + _REF_HTML + " của bạn:</p>\n"
        "<blockquote>{{ message.html|safe }}</blockquote>\n"
        "<p>Bạn có thể trả lời trực tiếp email này; nội dung trả lời sẽ được thêm vào yêu cầu của bạn.</p>\n"
        + _VIEW_VI_HTML + _SIGN_VI_HTML,
    ),
    "reply_to_agent": _t(
        _TAG + 'Phản hồi mới từ {{ message.author_name or ticket.requester_name or "khách hàng" }}: '
        "{{ ticket.subject }}",
        _HI_VI + '{{ message.author_name or ticket.requester_name or "Khách hàng" }} đã phản hồi trong phiếu '
        "yêu cầu " + _REF + ":\n\n{{ message.text }}\n\n" + _DETAILS_VI + _OPEN_VI,
        _HI_VI_HTML + '<p><strong>{{ message.author_name or ticket.requester_name or "Khách hàng" }}</strong>'
        " đã phản hồi trong phiếu yêu cầu " + _REF_HTML + ":</p>\n"
        "<blockquote>{{ message.html|safe }}</blockquote>\n" + _DETAILS_VI_HTML + _OPEN_VI_HTML,
    ),
    "status_changed": _t(
        _TAG + "Yêu cầu của bạn đã chuyển sang trạng thái: {{ new_status|status_label }}",
        _HI_VI + "Trạng thái yêu cầu " + _REF + " của bạn"
        "{% if old_status %} đã chuyển từ “{{ old_status|status_label }}” sang{% else %} hiện là{% endif %}"
        " “{{ new_status|status_label }}”.\n\n"
        "Nếu cần bổ sung thông tin, bạn chỉ cần trả lời email này; nội dung trả lời sẽ được thêm vào yêu cầu "
        "của bạn.\n" + _VIEW_VI + _SIGN_VI,
        _HI_VI_HTML + "<p>Trạng thái yêu cầu " + _REF_HTML + " của bạn"
        "{% if old_status %} đã chuyển từ “{{ old_status|status_label }}” sang{% else %} hiện là{% endif %}"
        " <strong>“{{ new_status|status_label }}”</strong>.</p>\n"
        "<p>Nếu cần bổ sung thông tin, bạn chỉ cần trả lời email này; nội dung trả lời sẽ được thêm vào yêu cầu "
        "của bạn.</p>\n" + _VIEW_VI_HTML + _SIGN_VI_HTML,
    ),
    "sla_warning": _t(
        _TAG + "Cảnh báo SLA – hạn {{ clock|clock_label }}: {{ due_at }}",
        _HI_VI + "Phiếu yêu cầu " + _REF + " sắp đến hạn {{ clock|clock_label }}: {{ due_at }}"
        "{% if percent %} (đã dùng {{ percent }} % thời gian cho phép){% endif %}.\n\n" + _DETAILS_VI + _OPEN_VI,
        _HI_VI_HTML + "<p>Phiếu yêu cầu " + _REF_HTML + " sắp đến hạn {{ clock|clock_label }}: "
        "<strong>{{ due_at }}</strong>{% if percent %} (đã dùng {{ percent }} % thời gian cho phép){% endif %}.</p>\n"
        + _DETAILS_VI_HTML + _OPEN_VI_HTML,
    ),
    "sla_critical": _t(
        _TAG + "Sắp vi phạm SLA – hạn {{ clock|clock_label }}: {{ due_at }}",
        _HI_VI + "Phiếu yêu cầu " + _REF + " sắp vi phạm SLA: hạn {{ clock|clock_label }} là {{ due_at }}"
        "{% if percent %} (đã dùng {{ percent }} % thời gian cho phép){% endif %}. Vui lòng xử lý ngay.\n\n"
        + _DETAILS_VI + _OPEN_VI,
        _HI_VI_HTML + "<p>Phiếu yêu cầu " + _REF_HTML + " sắp vi phạm SLA: hạn {{ clock|clock_label }} là "
        "<strong>{{ due_at }}</strong>{% if percent %} (đã dùng {{ percent }} % thời gian cho phép){% endif %}. "
        "Vui lòng xử lý ngay.</p>\n" + _DETAILS_VI_HTML + _OPEN_VI_HTML,
    ),
    "sla_breached": _t(
        _TAG + "Đã vi phạm SLA – hạn {{ clock|clock_label }}: {{ due_at }}",
        _HI_VI + "Phiếu yêu cầu " + _REF + " đã vi phạm SLA: hạn {{ clock|clock_label }} là {{ due_at }} nhưng "
        "chưa được đáp ứng.\n\n" + _DETAILS_VI + _OPEN_VI,
        _HI_VI_HTML + "<p>Phiếu yêu cầu " + _REF_HTML + " đã vi phạm SLA: hạn {{ clock|clock_label }} là "
        "<strong>{{ due_at }}</strong> nhưng chưa được đáp ứng.</p>\n" + _DETAILS_VI_HTML + _OPEN_VI_HTML,
    ),
    "escalated": _t(
        _TAG + "Đã chuyển lên cấp {{ level }}: {{ ticket.subject }}",
        _HI_VI + "Phiếu yêu cầu " + _REF + " đã được chuyển lên cấp {{ level }}.\n\n"
        "{% if reason %}Lý do: {{ reason }}\n\n{% endif %}" + _DETAILS_VI + _OPEN_VI,
        _HI_VI_HTML + "<p>Phiếu yêu cầu " + _REF_HTML + " đã được chuyển lên <strong>cấp {{ level }}</strong>.</p>\n"
        "{% if reason %}<p>Lý do: {{ reason }}</p>{% endif %}\n" + _DETAILS_VI_HTML + _OPEN_VI_HTML,
    ),
    "queue_waiting": _t(
        _TAG + "Đã chờ {{ waited_minutes }} phút chưa có người nhận: {{ ticket.subject }}",
        _HI_VI + "Phiếu yêu cầu " + _REF + " đã chờ {{ waited_minutes }} phút"
        "{% if team_name %} trong hàng đợi của nhóm {{ team_name }}{% endif %} mà chưa có nhân viên nào nhận "
        "xử lý.\n\n" + _DETAILS_VI + _OPEN_VI,
        _HI_VI_HTML + "<p>Phiếu yêu cầu " + _REF_HTML + " đã chờ <strong>{{ waited_minutes }} phút</strong>"
        "{% if team_name %} trong hàng đợi của nhóm {{ team_name }}{% endif %} mà chưa có nhân viên nào nhận "
        "xử lý.</p>\n" + _DETAILS_VI_HTML + _OPEN_VI_HTML,
    ),
    "daily_summary": _t(
        "Tóm tắt ngày {{ date }}{% if team_name %} – nhóm {{ team_name }}{% endif %}",
        _HI_VI + "Dưới đây là tóm tắt hoạt động{% if team_name %} của nhóm {{ team_name }}{% endif %}"
        " ngày {{ date }}:\n\n"
        "- Phiếu mới: {{ counts.created or 0 }}\n"
        "- Đã giải quyết: {{ counts.resolved or 0 }}\n"
        "- Đang mở: {{ counts.open or 0 }}\n"
        "- Vi phạm SLA: {{ counts.breached or 0 }}\n"
        "- Đang chờ trong hàng đợi: {{ counts.waiting_in_queue or 0 }}\n"
        "{% if oldest %}\n\nCác phiếu yêu cầu tồn đọng lâu nhất:\n"
        "{% for t in oldest %}\n"
        "- {{ t.reference }} “{{ t.subject }}”{% if t.priority %} ({{ t.priority|priority_label }}){% endif %}"
        "{% if t.url %}: {{ t.url }}{% endif +%}\n"
        "{% endfor %}\n"
        "{% endif %}\n",
        _HI_VI_HTML + "<p>Dưới đây là tóm tắt hoạt động{% if team_name %} của nhóm <strong>{{ team_name }}</strong>"
        "{% endif %} ngày {{ date }}:</p>\n"
        "<ul>\n"
        "<li>Phiếu mới: <strong>{{ counts.created or 0 }}</strong></li>\n"
        "<li>Đã giải quyết: <strong>{{ counts.resolved or 0 }}</strong></li>\n"
        "<li>Đang mở: <strong>{{ counts.open or 0 }}</strong></li>\n"
        "<li>Vi phạm SLA: <strong>{{ counts.breached or 0 }}</strong></li>\n"
        "<li>Đang chờ trong hàng đợi: <strong>{{ counts.waiting_in_queue or 0 }}</strong></li>\n"
        "</ul>\n"
        "{% if oldest %}\n<p><strong>Các phiếu yêu cầu tồn đọng lâu nhất</strong></p>\n<ul>\n"
        "{% for t in oldest %}\n"
        '<li>{% if t.url %}<a href="{{ t.url }}">{{ t.reference }}</a>{% else %}{{ t.reference }}{% endif %}'
        " “{{ t.subject }}”{% if t.priority %} ({{ t.priority|priority_label }}){% endif %}</li>\n"
        "{% endfor %}\n"
        "</ul>\n{% endif %}\n",
    ),
    "digest": _t(
        "{{ count }} cập nhật mới về {% if groups|length == 1 and groups[0].ticket %}phiếu yêu cầu "
        "“{{ groups[0].ticket.subject }}”{% else %}các phiếu yêu cầu của bạn{% endif %}",
        _HI_VI + "Bạn có {{ count }} cập nhật mới:\n"
        "{% for group in groups %}\n\n"
        "{% if group.ticket %}{{ group.ticket.reference }} “{{ group.ticket.subject }}”{% else %}Cập nhật khác"
        "{% endif %} ({{ group.updates|length }} cập nhật)\n"
        "{% for item in group.updates %}\n"
        "- {% if item.at %}{{ item.at }} · {% endif %}{{ item.title }}{% if item.text %}: {{ item.text }}{% endif +%}\n"
        "{% endfor %}\n"
        "{% if group.ticket and group.ticket.url %}{{ group.ticket.url }}\n{% endif %}"
        "{% endfor %}\n",
        _HI_VI_HTML + "<p>Bạn có <strong>{{ count }}</strong> cập nhật mới:</p>\n"
        "{% for group in groups %}\n"
        "<h3>{% if group.ticket %}"
        '{% if group.ticket.url %}<a href="{{ group.ticket.url }}">{{ group.ticket.reference }}</a>'
        "{% else %}{{ group.ticket.reference }}{% endif %} “{{ group.ticket.subject }}”"
        "{% else %}Cập nhật khác{% endif %} ({{ group.updates|length }} cập nhật)</h3>\n"
        "<ul>\n"
        "{% for item in group.updates %}\n"
        "<li>{% if item.at %}{{ item.at }} · {% endif %}<strong>{{ item.title }}</strong>"
        "{% if item.html %}:<blockquote>{{ item.html|safe }}</blockquote>"
        "{% elif item.text %}: {{ item.text }}{% endif %}</li>\n"
        "{% endfor %}\n"
        "</ul>\n"
        "{% endfor %}\n",
    ),
    "account_changed": _t(
        "{{ 'Địa chỉ email' if change == 'email' else 'Mật khẩu' }}{% if workspace_name %} {{ workspace_name }}"
        "{% endif %} của bạn đã được thay đổi",
        _HI_VI + "{% if change == 'email' %}Bộ phận hỗ trợ của chúng tôi đã đổi địa chỉ email tài khoản"
        "{% if workspace_name %} {{ workspace_name }}{% endif %} của bạn từ {{ old_email }} sang {{ new_email }}. "
        "Từ nay các email về yêu cầu của bạn sẽ được gửi tới {{ new_email }}.\n\n"
        "Nếu bạn không yêu cầu việc này, hãy trả lời email này hoặc liên hệ ngay với bộ phận hỗ trợ của chúng tôi.\n"
        "{% else %}Mật khẩu{% if workspace_name %} {{ workspace_name }}{% endif %} của bạn đã được thay đổi. "
        "Mọi phiên đăng nhập khác bằng mật khẩu cũ đã bị kết thúc.\n\n"
        "Nếu đó là bạn, bạn không cần làm gì thêm.\n\n"
        "Nếu không phải bạn, người khác đã biết hoặc đã đặt mật khẩu của bạn: hãy yêu cầu mật khẩu mới"
        "{% if reset_url %} tại {{ reset_url }}{% endif %} và báo cho bộ phận hỗ trợ của chúng tôi.\n{% endif %}",
        _HI_VI_HTML + "{% if change == 'email' %}<p>Bộ phận hỗ trợ của chúng tôi đã đổi địa chỉ email tài khoản"
        "{% if workspace_name %} <strong>{{ workspace_name }}</strong>{% endif %} của bạn từ {{ old_email }} sang "
        "{{ new_email }}. Từ nay các email về yêu cầu của bạn sẽ được gửi tới {{ new_email }}.</p>\n"
        "<p>Nếu bạn không yêu cầu việc này, hãy trả lời email này hoặc liên hệ ngay với bộ phận hỗ trợ của chúng "
        "tôi.</p>\n{% else %}<p>Mật khẩu{% if workspace_name %} <strong>{{ workspace_name }}</strong>{% endif %} của bạn "
        "đã được thay đổi. Mọi phiên đăng nhập khác bằng mật khẩu cũ đã bị kết thúc.</p>\n"
        "<p>Nếu đó là bạn, bạn không cần làm gì thêm.</p>\n"
        "<p>Nếu không phải bạn, người khác đã biết hoặc đã đặt mật khẩu của bạn: "
        '{% if reset_url %}<a href="{{ reset_url }}">hãy yêu cầu mật khẩu mới</a>{% else %}hãy yêu cầu mật khẩu mới'
        "{% endif %} và báo cho bộ phận hỗ trợ của chúng tôi.</p>\n{% endif %}",
    ),
    "mailbox_claim_removed": _t(
        "{{ address }} không còn là địa chỉ hỗ trợ của bạn",
        _HI_VI + "Không gian làm việc{% if workspace_name %} {{ workspace_name }}{% endif %} của bạn đã thêm "
        "{{ address }} làm địa chỉ hỗ trợ nhưng chưa xác minh địa chỉ này. Sau đó một không gian làm việc khác "
        "đã xác minh địa chỉ, chứng tỏ họ nhận được thư gửi tới địa chỉ này, nên địa chỉ giờ thuộc về không gian "
        "làm việc đó: địa chỉ đã bị gỡ khỏi các hộp thư của bạn và thư gửi tới địa chỉ này không còn đến với bạn."
        "\n\n"
        "Bạn có thể:\n"
        "- Thêm địa chỉ mà bạn thực sự nhận thư hỗ trợ làm hộp thư và xác minh địa chỉ đó bằng email xác minh "
        "Relaydesk gửi tới: chỉ địa chỉ đã xác minh mới thuộc về bạn.\n"
        "- Nếu {{ address }} là của bạn và bạn không lường trước việc này, hãy liên hệ bộ phận hỗ trợ của dịch vụ "
        "mà bạn dùng Relaydesk qua đó.\n",
        _HI_VI_HTML + "<p>Không gian làm việc{% if workspace_name %} <strong>{{ workspace_name }}</strong>"
        "{% endif %} của bạn đã thêm <strong>{{ address }}</strong> làm địa chỉ hỗ trợ nhưng chưa xác minh địa "
        "chỉ này. Sau đó một không gian làm việc khác đã xác minh địa chỉ, chứng tỏ họ nhận được thư gửi tới địa "
        "chỉ này, nên địa chỉ giờ thuộc về không gian làm việc đó: địa chỉ đã bị gỡ khỏi các hộp thư của bạn và "
        "thư gửi tới địa chỉ này không còn đến với bạn.</p>\n"
        "<p>Bạn có thể:</p>\n<ul>\n"
        "<li>Thêm địa chỉ mà bạn thực sự nhận thư hỗ trợ làm hộp thư và xác minh địa chỉ đó bằng email xác minh "
        "Relaydesk gửi tới: chỉ địa chỉ đã xác minh mới thuộc về bạn.</li>\n"
        "<li>Nếu {{ address }} là của bạn và bạn không lường trước việc này, hãy liên hệ bộ phận hỗ trợ của dịch "
        "vụ mà bạn dùng Relaydesk qua đó.</li>\n</ul>\n",
    ),
    "digest_reply_refused": _t(
        "Chưa được thêm vào phiếu yêu cầu nào: “{{ subject }}”",
        _HI_VI + "Email “{{ subject }}” của bạn trả lời một email về nhiều phiếu yêu cầu, nên Relaydesk không "
        "biết nó dành cho phiếu nào: email chưa được thêm vào phiếu nào và chưa được gửi tới khách hàng nào.\n\n"
        "Để trả lời một phiếu yêu cầu qua email, bạn hãy trả lời email về riêng phiếu yêu cầu đó (tiêu đề có số "
        "phiếu, ví dụ [T-000123]), hoặc trả lời trong ứng dụng{% if app_url %}: {{ app_url }}{% endif %}.\n",
        _HI_VI_HTML + "<p>Email “{{ subject }}” của bạn trả lời một email về nhiều phiếu yêu cầu, nên Relaydesk "
        "không biết nó dành cho phiếu nào: email chưa được thêm vào phiếu nào và chưa được gửi tới khách hàng "
        "nào.</p>\n"
        "<p>Để trả lời một phiếu yêu cầu qua email, bạn hãy trả lời email về riêng phiếu yêu cầu đó (tiêu đề có "
        "số phiếu, ví dụ [T-000123]), hoặc trả lời trong "
        '{% if app_url %}<a href="{{ app_url }}">ứng dụng</a>{% else %}ứng dụng{% endif %}.</p>\n',
    ),
}

TEMPLATES: dict[str, dict[str, dict[str, str]]] = {"en": _EN, "vi": _VI}

# --- Words the module puts around or into the templates -------------------------------------------------

# Customers see friendlier, less internal wording than agents (an internal wait is still "in progress" to them).
STATUS_LABELS: dict[str, dict[str, dict[str, str]]] = {
    "customer": {
        "en": {
            "OPEN": "Open", "ASSIGNED": "Assigned to an agent", "IN_PROGRESS": "In progress",
            "WAITING_ON_CUSTOMER": "Waiting on you", "WAITING_INTERNAL": "In progress",
            "ESCALATED": "Escalated to a specialist", "RESOLVED": "Resolved", "CLOSED": "Closed",
            "REOPENED": "Reopened",
        },
        "vi": {
            "OPEN": "Đang mở", "ASSIGNED": "Đã chuyển cho nhân viên hỗ trợ", "IN_PROGRESS": "Đang xử lý",
            "WAITING_ON_CUSTOMER": "Đang chờ phản hồi từ bạn", "WAITING_INTERNAL": "Đang xử lý",
            "ESCALATED": "Đã chuyển cho chuyên viên", "RESOLVED": "Đã giải quyết", "CLOSED": "Đã đóng",
            "REOPENED": "Đã mở lại",
        },
    },
    "agent": {
        "en": {
            "OPEN": "Open", "ASSIGNED": "Assigned", "IN_PROGRESS": "In progress",
            "WAITING_ON_CUSTOMER": "Waiting on customer", "WAITING_INTERNAL": "Waiting internally",
            "ESCALATED": "Escalated", "RESOLVED": "Resolved", "CLOSED": "Closed", "REOPENED": "Reopened",
        },
        "vi": {
            "OPEN": "Đang mở", "ASSIGNED": "Đã phân công", "IN_PROGRESS": "Đang xử lý",
            "WAITING_ON_CUSTOMER": "Chờ khách hàng phản hồi", "WAITING_INTERNAL": "Chờ xử lý nội bộ",
            "ESCALATED": "Đã chuyển cấp", "RESOLVED": "Đã giải quyết", "CLOSED": "Đã đóng", "REOPENED": "Đã mở lại",
        },
    },
}

PRIORITY_LABELS: dict[str, dict[str, str]] = {
    "en": {"LOW": "Low", "MEDIUM": "Medium", "HIGH": "High", "URGENT": "Urgent"},
    "vi": {"LOW": "Thấp", "MEDIUM": "Trung bình", "HIGH": "Cao", "URGENT": "Khẩn cấp"},
}

# Keys are normalised (lower case, underscores); the Vietnamese reads after "hạn" ("the deadline for ...").
CLOCK_LABELS: dict[str, dict[str, str]] = {
    "en": {"first_response": "first response", "next_response": "next response", "resolution": "resolution"},
    "vi": {"first_response": "phản hồi đầu tiên", "next_response": "phản hồi tiếp theo", "resolution": "giải quyết"},
}

# The reasons the SLA monitor gives for an escalation (a person's own reason is shown as written).
ESCALATION_REASONS: dict[str, dict[str, str]] = {
    "en": {"sla_critical": "{clock} SLA critical", "sla_breached": "{clock} SLA breached",
           "second_breach": "a second SLA breach", "still_unresolved": "still unresolved {minutes} after level {after_level}",
           "minute": "1 minute", "minutes": "{n} minutes"},
    "vi": {"sla_critical": "SLA {clock} sắp bị vi phạm", "sla_breached": "SLA {clock} đã bị vi phạm",
           "second_breach": "vi phạm SLA lần thứ hai",
           "still_unresolved": "vẫn chưa được giải quyết {minutes} sau khi lên cấp {after_level}",
           "minute": "1 phút", "minutes": "{n} phút"},
}

_CUSTOMER_EN = "You receive this because you contacted our support team about this request."
_CUSTOMER_VI = "Bạn nhận được email này vì bạn đã liên hệ với bộ phận hỗ trợ của chúng tôi về yêu cầu này."
_OWNER_EN = "You receive this because you are assigned to this ticket or lead its team."
_OWNER_VI = "Bạn nhận được email này vì bạn phụ trách phiếu yêu cầu này hoặc là trưởng nhóm xử lý."

# The footer line of every email: why this person gets it (people unsubscribe less when they know).
FOOTER_REASONS: dict[str, dict[str, str]] = {
    "en": {
        "ticket_created": _CUSTOMER_EN,
        "assigned": "You receive this because this ticket was assigned to you.",
        "reply_to_customer": _CUSTOMER_EN,
        "reply_to_agent": "You receive this because you are assigned to or follow this ticket.",
        "status_changed": _CUSTOMER_EN,
        "sla_warning": _OWNER_EN,
        "sla_critical": _OWNER_EN,
        "sla_breached": _OWNER_EN,
        "escalated": _OWNER_EN,
        "queue_waiting": "You receive this because you manage or lead the team that owns this queue.",
        "daily_summary": "You receive this because daily summaries are turned on for your team.",
        "digest": "You receive this because you have notifications turned on for these tickets.",
        "digest_reply_refused": "You receive this because you replied by email to an email from Relaydesk.",
        "mailbox_claim_removed": "You receive this because you are an admin of this workspace.",
        "account_changed": "You receive this because it is about your own sign-in, whatever your notification choices.",
    },
    "vi": {
        "ticket_created": _CUSTOMER_VI,
        "assigned": "Bạn nhận được email này vì phiếu yêu cầu này được giao cho bạn.",
        "reply_to_customer": _CUSTOMER_VI,
        "reply_to_agent": "Bạn nhận được email này vì bạn đang phụ trách hoặc theo dõi phiếu yêu cầu này.",
        "status_changed": _CUSTOMER_VI,
        "sla_warning": _OWNER_VI,
        "sla_critical": _OWNER_VI,
        "sla_breached": _OWNER_VI,
        "escalated": _OWNER_VI,
        "queue_waiting": "Bạn nhận được email này vì bạn quản lý hoặc là trưởng nhóm phụ trách hàng đợi này.",
        "daily_summary": "Bạn nhận được email này vì tính năng tóm tắt hằng ngày đang được bật cho nhóm của bạn.",
        "digest": "Bạn nhận được email này vì bạn đã bật thông báo cho các phiếu yêu cầu này.",
        "digest_reply_refused": "Bạn nhận được email này vì bạn đã trả lời qua email một email của Relaydesk.",
        "mailbox_claim_removed": "Bạn nhận được email này vì bạn là quản trị viên của không gian làm việc này.",
        "account_changed": "Bạn nhận được email này vì nó liên quan đến tài khoản đăng nhập của chính bạn, dù bạn "
                           "chọn nhận thông báo nào.",
    },
}

# One line per update in a digest; {name} is who wrote, {status} the new status in words,
# {minutes} how long a ticket has waited for an agent.
DIGEST_TITLES: dict[str, dict[str, str]] = {
    "en": {"reply_to_agent": "New reply from {name}", "reply_to_customer": "New reply from {name}",
           "status_changed": "Status changed to {status}", "assigned": "Assigned to you",
           "queue_waiting": "Has waited {minutes} minutes for an agent",
           "customer": "the customer", "team": "our support team"},
    "vi": {"reply_to_agent": "Phản hồi mới từ {name}", "reply_to_customer": "Phản hồi mới từ {name}",
           "status_changed": "Trạng thái đã chuyển sang {status}", "assigned": "Đã được phân công cho bạn",
           "queue_waiting": "Đã chờ {minutes} phút chưa có nhân viên nhận",
           "customer": "khách hàng", "team": "đội ngũ hỗ trợ"},
}

# In-app titles of what customers are told, in their language ({ref}: T-000123; {status}:
# the status as customers read it). Staff titles are written in the notifier.
CUSTOMER_TITLES: dict[str, dict[str, str]] = {
    "en": {"ticket_created": "We received your request {ref}", "reply_to_customer": "New reply on {ref}",
           "status_changed": "{ref} is now {status}"},
    "vi": {"ticket_created": "Chúng tôi đã nhận được yêu cầu {ref}", "reply_to_customer": "Phản hồi mới cho yêu cầu {ref}",
           "status_changed": "Yêu cầu {ref}: {status}"},
}

# In-app title and text of the notice to a workspace's admins that another workspace verified
# an address it had claimed ({address}).
CLAIM_REMOVED_NOTES: dict[str, tuple[str, str]] = {
    "en": ("{address} was removed from your mailboxes",
           "Another workspace verified this address, so its mail goes there now. Add and verify the address "
           "you receive support mail at, or contact support if {address} is yours."),
    "vi": ("{address} đã bị gỡ khỏi các hộp thư của bạn",
           "Một không gian làm việc khác đã xác minh địa chỉ này nên thư gửi tới địa chỉ giờ đến đó. Hãy thêm và "
           "xác minh địa chỉ bạn nhận thư hỗ trợ, hoặc liên hệ bộ phận hỗ trợ nếu {address} là của bạn."),
}

PREFERENCES_LABELS: dict[str, str] = {
    "en": "Manage notification preferences",
    "vi": "Quản lý tùy chọn nhận thông báo",
}

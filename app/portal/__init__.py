"""The member portal (self-service), blueprint ``portal`` at ``/``: one module per page.

- ``home``: ``/``, the public landing page, or the signed-in member's dashboard
  (membership, card, the next events of their area, notices);
- ``card``: ``/card``, the card on screen with its QR code (``/card/qr.png``)
  and its PDF (``/card/pdf``, the console's renderer);
- ``events``: ``/events``, events open to the member, their registrations
  and attendance history; an event's page; register and cancel (POST);
- ``join``: ``/join`` (apply: a pending member and a login), email
  verification links, ``/privacy`` (the notice a joiner consents to);
- ``profile``: ``/profile``, the member's data, contact details, photo,
  change requests, "my data" (JSON), erasure request; email-change links.
- ``referrals``: ``/referrals``, "Refer a friend": the member's code, join
  link and QR, share buttons, invitations, points and ranks.
- ``dues``: ``/dues``, "Pay dues / renew": tiers, paying online (Stripe
  Checkout), the return page that re-reads the session, the member's payments.
- ``renew``: ``/renew/<token>``, a renewal reminder's "Renew now": paying
  without signing in, the token being the proof.
- ``notifications``: ``/notifications`` (the bell's list, mark read), mail
  preferences, ``/unsubscribe/<token>`` (one-click, no sign-in).

Views parse and render; the rules are in ``app.services.self_service`` (and
the services it calls), which only ever acts on the signed-in user's own
member record: no portal URL carries a member or card id. A POST view
commits once. Pages work from 360 px wide; scripts live in app/static/js
(the Content-Security-Policy runs no inline script).
"""

from app.portal import card, dues, events, home, join, notifications, profile, referrals, renew  # noqa: F401  (each attaches its routes to ``bp``)
from app.portal.blueprint import bp

__all__ = ["bp"]

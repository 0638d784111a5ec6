"""Subscriptions: the only code that creates people and subscriptions or changes their state.

Web pages, imports, bounce processing, the send loop and the CLI are thin adapters over these
functions. Every change of status goes through `transition`, which writes a `ConsentEvent`
saying when, why (`action`) and from where (`Origin`: a web page and its language, an import
file and line, a CLI command, a bounce, a complaint, an editor, a refusal at send time).

Consent rules kept here, nowhere else:
- a person who unsubscribed, bounced or complained is *suppressed*: no import, CLI addition
  or editor action makes them active again (`Suppressed`); an erased address is kept as a
  keyed hash (`Suppression`) with the same effect;
- only the person's own confirmed opt-in (`confirm`) lifts a suppression;
- a subscription to an audience that receives non-public items waits for an editor
  (`awaiting_approval`) after confirmation, unless the routing rules approve its address's
  domain at once (`auto_approved`);
- submitting the public form for a known address stores nothing (`request`): only the
  confirmation of that request changes anything.

Functions take an open session and `now`; they flush but never commit (the caller's scope does).
The modules, by concept: `states` (the statuses and the one transition), `lookups`, `suppression`,
`adding` (editors, imports, the CLI), `confirming` (the public form and approval), `preferences`,
`leaving` (unsubscribes, bounces, complaints), `erasure` (the person's data), `segments` (whom to
mail), `imports` (subscribers' files and additions). Callers use the names exported here.
"""

from .adding import (
    add,
)
from .confirming import (
    Request,
    Requested,
    approve,
    auto_approved,
    confirm,
    holds,
    needs_approval,
    request,
    spent,
    waiting,
)
from .erasure import (
    erase,
    export_person,
    purge_pending,
)
from .imports import (
    OPTIONAL_COLUMNS,
    REQUIRED_COLUMNS,
    STATUS_COLUMN,
    SUBSCRIBER_FIELDS,
    KnownKeys,
    add_subscriber,
    check_key,
    check_subscriber,
    import_subscribers,
)
from .leaving import (
    is_recipient_refusal,
    leave,
    mark_bounced,
    mark_complained,
    refused_at_send,
    unsubscribe,
)
from .lookups import (
    effective_status,
    everyone,
    find_person,
    listing,
    normalise_address,
    subscriptions_of,
)
from .preferences import (
    change,
)
from .segments import (
    people_segments,
)
from .states import (
    LIVE,
    NARROWING,
    ORIGINS,
    SUPPRESSED,
    Origin,
    Suppressed,
    transition,
)
from .suppression import (
    Keys,
    address_hash,
    erased,
    suppression_of,
)

__all__ = [
    "Keys",
    "KnownKeys",
    "LIVE",
    "NARROWING",
    "OPTIONAL_COLUMNS",
    "ORIGINS",
    "Origin",
    "REQUIRED_COLUMNS",
    "Request",
    "Requested",
    "STATUS_COLUMN",
    "SUBSCRIBER_FIELDS",
    "SUPPRESSED",
    "Suppressed",
    "add",
    "add_subscriber",
    "address_hash",
    "approve",
    "auto_approved",
    "change",
    "check_key",
    "check_subscriber",
    "confirm",
    "effective_status",
    "erase",
    "erased",
    "everyone",
    "export_person",
    "find_person",
    "holds",
    "import_subscribers",
    "is_recipient_refusal",
    "leave",
    "listing",
    "mark_bounced",
    "mark_complained",
    "needs_approval",
    "normalise_address",
    "people_segments",
    "purge_pending",
    "refused_at_send",
    "request",
    "spent",
    "subscriptions_of",
    "suppression_of",
    "transition",
    "unsubscribe",
    "waiting",
]

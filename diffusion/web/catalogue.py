"""The subscriber pages' strings in English and French; other languages fall back to English."""

# key -> language -> text; `{name}` fields are filled by `text()`.
STRINGS: dict[str, dict[str, str]] = {
    "site_name": {"en": "Newsletter and feeds", "fr": "Lettre d'information et fils"},
    "skip": {"en": "Skip to content", "fr": "Aller au contenu"},
    "language_switch": {"en": "Language", "fr": "Langue"},
    "subscribe_title": {
        "en": "Subscribe to the newsletter",
        "fr": "S'abonner à la lettre d'information",
    },
    "subscribe_intro": {
        "en": "News of NGO partners, programme Sectors and Field Offices, by email, in your "
        "language. We will send you a link to confirm your subscription.",
        "fr": "Les nouvelles des ONG partenaires, des Secteurs de programme et des bureaux hors "
        "Siège, par courriel, dans votre langue. Nous vous enverrons un lien pour confirmer "
        "votre abonnement.",
    },
    "email": {"en": "Email address", "fr": "Adresse électronique"},
    "name": {"en": "Name (optional)", "fr": "Nom (facultatif)"},
    "language": {"en": "Language of the emails", "fr": "Langue des courriels"},
    "audience": {"en": "I receive it as", "fr": "Je la reçois en tant que"},
    "key": {
        "en": "Organisation, Sector, office or country",
        "fr": "Organisation, Secteur, bureau ou pays",
    },
    "key_hint": {
        "en": "Only for an audience that follows one: an NGO's short name (e.g. ifla), a Sector "
        "(ED, SC, SHS, CLT, CI), a Field Office code, or a country code (e.g. CO).",
        "fr": "Seulement pour un public qui en suit un : le nom court d'une ONG (ex. ifla), un "
        "Secteur (ED, SC, SHS, CLT, CI), le code d'un bureau ou un code pays (ex. CO).",
    },
    "sectors": {"en": "Only these Sectors (optional)", "fr": "Seulement ces Secteurs (facultatif)"},
    "themes": {"en": "Only these themes (optional)", "fr": "Seulement ces thèmes (facultatif)"},
    "themes_hint": {
        "en": "Separated by commas, e.g. lifelong learning, inclusion.",
        "fr": "Séparés par des virgules, ex. apprentissage tout au long de la vie, inclusion.",
    },
    "cadence": {"en": "How often", "fr": "Fréquence"},
    "cadence_monthly": {"en": "Monthly newsletter", "fr": "Lettre mensuelle"},
    "cadence_weekly": {"en": "Weekly digest", "fr": "Résumé hebdomadaire"},
    "subscribe_button": {"en": "Subscribe", "fr": "S'abonner"},
    "subscribe_sent_title": {"en": "Check your inbox", "fr": "Consultez votre messagerie"},
    "subscribe_sent": {
        "en": "If {email} can receive the newsletter, a message with a confirmation link is on "
        "its way. The link is valid for {days} days. Nothing is sent until you confirm.",
        "fr": "Si {email} peut recevoir la lettre, un message contenant un lien de confirmation "
        "est en route. Le lien est valable {days} jours. Rien n'est envoyé avant votre "
        "confirmation.",
    },
    "invalid_input": {"en": "Please check this form", "fr": "Veuillez vérifier ce formulaire"},
    "rate_limited_title": {"en": "Too many requests", "fr": "Trop de demandes"},
    "rate_limited": {
        "en": "Too many subscription requests were made for this address or from your network. "
        "Please try again in an hour.",
        "fr": "Trop de demandes d'abonnement ont été faites pour cette adresse ou depuis votre "
        "réseau. Veuillez réessayer dans une heure.",
    },
    "csrf_title": {"en": "This form has expired", "fr": "Ce formulaire a expiré"},
    "csrf": {
        "en": "For your security the form could not be accepted. Go back, reload the page and "
        "submit it again (cookies must be allowed for this site).",
        "fr": "Par sécurité, le formulaire n'a pas pu être accepté. Revenez en arrière, "
        "rechargez la page et envoyez-le de nouveau (les cookies doivent être autorisés pour "
        "ce site).",
    },
    "invalid_link_title": {"en": "This link cannot be used", "fr": "Ce lien n'est pas utilisable"},
    "invalid_link": {
        "en": "The link is not valid, has already been used or has expired. You can subscribe "
        "again from the subscription page.",
        "fr": "Le lien n'est pas valide, a déjà servi ou a expiré. Vous pouvez vous abonner de "
        "nouveau depuis la page d'abonnement.",
    },
    "back_to_subscribe": {
        "en": "Go to the subscription page",
        "fr": "Aller à la page d'abonnement",
    },
    "confirm_title": {"en": "Confirm your subscription", "fr": "Confirmez votre abonnement"},
    "confirm_intro": {
        "en": "Confirm that {email} wants to receive the newsletter.",
        "fr": "Confirmez que {email} souhaite recevoir la lettre d'information.",
    },
    "confirm_button": {"en": "Confirm my subscription", "fr": "Confirmer mon abonnement"},
    "confirmed_title": {"en": "Subscription confirmed", "fr": "Abonnement confirmé"},
    "confirmed": {
        "en": "Thank you: {email} will receive the next edition.",
        "fr": "Merci : {email} recevra la prochaine édition.",
    },
    "preferences_link": {"en": "Change your preferences", "fr": "Modifier vos préférences"},
    "preferences_title": {"en": "Your preferences", "fr": "Vos préférences"},
    "preferences_intro": {
        "en": "What {email} receives. Leave the Sectors and themes empty to receive everything "
        "of your audience.",
        "fr": "Ce que reçoit {email}. Laissez les Secteurs et thèmes vides pour tout recevoir "
        "de votre public.",
    },
    "save_button": {"en": "Save my preferences", "fr": "Enregistrer mes préférences"},
    "saved": {"en": "Your preferences are saved.", "fr": "Vos préférences sont enregistrées."},
    "unsubscribe_link": {"en": "Unsubscribe", "fr": "Se désabonner"},
    "unsubscribe_title": {"en": "Unsubscribe", "fr": "Se désabonner"},
    "unsubscribe_intro": {
        "en": "Stop sending the newsletter to {email}?",
        "fr": "Ne plus envoyer la lettre d'information à {email} ?",
    },
    "unsubscribe_button": {"en": "Unsubscribe", "fr": "Me désabonner"},
    "unsubscribed_title": {"en": "You are unsubscribed", "fr": "Vous êtes désabonné·e"},
    "unsubscribed": {
        "en": "{email} will receive no more editions. You can subscribe again at any time.",
        "fr": "{email} ne recevra plus d'éditions. Vous pouvez vous réabonner à tout moment.",
    },
    "archive_title": {"en": "Archive of the newsletter", "fr": "Archives de la lettre"},
    "archive_empty": {"en": "No edition has been sent yet.", "fr": "Aucune édition envoyée."},
    "archive_sent": {"en": "sent on {day}", "fr": "envoyée le {day}"},
    "not_found_title": {"en": "Page not found", "fr": "Page introuvable"},
    "not_found": {"en": "There is no page at this address.", "fr": "Aucune page à cette adresse."},
    "greeting": {"en": "Hello,", "fr": "Bonjour,"},
    "feeds": {"en": "RSS and Atom feeds", "fr": "Fils RSS et Atom"},
    "confirm_mail_subject": {
        "en": "Confirm your subscription to {organisation}",
        "fr": "Confirmez votre abonnement à {organisation}",
    },
    "confirm_mail_body": {
        "en": "Hello,\n\nSomeone, probably you, asked to receive the newsletter of "
        "{organisation} at {email}.\n\nTo confirm, open this link (valid for {days} days) and "
        "press the button:\n\n{url}\n\nIf you did not ask for it, ignore this message: "
        "nothing will be sent to you.\n",
        "fr": "Bonjour,\n\nQuelqu'un, sans doute vous, a demandé à recevoir la lettre "
        "d'information de {organisation} à l'adresse {email}.\n\nPour confirmer, ouvrez ce "
        "lien (valable {days} jours) et appuyez sur le bouton :\n\n{url}\n\nSi vous ne l'avez "
        "pas demandé, ignorez ce message : rien ne vous sera envoyé.\n",
    },
    "already_mail_subject": {
        "en": "Your subscription to {organisation}",
        "fr": "Votre abonnement à {organisation}",
    },
    "already_mail_body": {
        "en": "Hello,\n\nSomeone, probably you, asked to subscribe {email} to the newsletter of "
        "{organisation}. This address already receives it.\n\nTo change what you receive, how "
        "often or in which language, open this link:\n\n{url}\n\nIf you did not ask, ignore "
        "this message: nothing changes.\n",
        "fr": "Bonjour,\n\nQuelqu'un, sans doute vous, a demandé à abonner {email} à la lettre "
        "d'information de {organisation}. Cette adresse la reçoit déjà.\n\nPour changer ce que "
        "vous recevez, la fréquence ou la langue, ouvrez ce lien :\n\n{url}\n\nSi vous ne "
        "l'avez pas demandé, ignorez ce message : rien ne change.\n",
    },
}

# Several subscriptions, approval of private audiences (issue 9).
STRINGS.update(
    {
        "needs_approval": {"en": "needs an editor's approval", "fr": "sur approbation"},
        "needs_approval_hint": {
            "en": "Choices marked as needing approval receive items that are not public: after "
            "you confirm, an editor of the Secretariat approves the subscription before its "
            "first newsletter. Anyone may receive the public newsletter.",
            "fr": "Les choix sur approbation reçoivent des informations qui ne sont pas "
            "publiques : après votre confirmation, un responsable du Secrétariat approuve "
            "l'abonnement avant sa première lettre. Tout le monde peut recevoir la lettre "
            "publique.",
        },
        "awaiting_approval_title": {
            "en": "Confirmed, awaiting approval",
            "fr": "Confirmé, en attente d'approbation",
        },
        "awaiting_approval": {
            "en": "Thank you: {email} is confirmed. This subscription receives items that are "
            "not public, so an editor approves it before you receive its newsletter.",
            "fr": "Merci : {email} est confirmée. Cet abonnement reçoit des informations qui ne "
            "sont pas publiques : un responsable l'approuve avant que vous receviez sa lettre.",
        },
        "subscriptions_heading": {"en": "Your subscriptions", "fr": "Vos abonnements"},
        "status_active": {"en": "active", "fr": "actif"},
        "status_awaiting_approval": {
            "en": "awaiting an editor's approval",
            "fr": "en attente d'approbation",
        },
        "status_pending": {"en": "not confirmed yet", "fr": "pas encore confirmé"},
        "status_left": {"en": "left", "fr": "quitté"},
        "save_subscription_button": {
            "en": "Save this subscription",
            "fr": "Enregistrer cet abonnement",
        },
        "leave_button": {"en": "Leave this subscription", "fr": "Quitter cet abonnement"},
        "left": {
            "en": "You left {what}; your other subscriptions are unchanged.",
            "fr": "Vous avez quitté {what} ; vos autres abonnements ne changent pas.",
        },
        "add_heading": {"en": "Add a subscription", "fr": "Ajouter un abonnement"},
        "add_button": {
            "en": "Send me a confirmation link",
            "fr": "M'envoyer un lien de confirmation",
        },
        "add_sent": {
            "en": "A link to confirm this subscription is on its way to {email}. Nothing "
            "changes until you confirm.",
            "fr": "Un lien pour confirmer cet abonnement est en route vers {email}. Rien ne "
            "change avant votre confirmation.",
        },
        "language_heading": {"en": "Language of the emails", "fr": "Langue des courriels"},
    }
)

AUDIENCE_LABELS: dict[str, dict[str, str]] = {
    "public": {"en": "Member of the public", "fr": "Membre du public"},
    "ngo": {"en": "NGO partner", "fr": "ONG partenaire"},
    "sector": {"en": "Programme Sector", "fr": "Secteur de programme"},
    "field_office": {"en": "Field Office", "fr": "Bureau hors Siège"},
    "member_state": {
        "en": "Member State (Permanent Delegation)",
        "fr": "État membre (Délégation permanente)",
    },
    "national_commission": {"en": "National Commission", "fr": "Commission nationale"},
    "liaison_committee": {"en": "Liaison Committee", "fr": "Comité de liaison"},
}

LANGUAGE_NAMES = {"en": "English", "fr": "Français"}


# What is wrong with one form field, for pages not in English: English pages show the
# validator's own message, which also names the value at fault.
FIELD_ERRORS: dict[str, dict[str, str]] = {
    "email": {
        "fr": "Cette adresse électronique ne peut pas être utilisée. Vérifiez-la : une adresse "
        "a la forme nom@domaine.org, et les lettres accentuées ne sont pas encore acceptées "
        "avant le @.",
    },
    "language": {"fr": "Cette langue n'est pas proposée ici."},
    "audience": {"fr": "Choisissez un public dans la liste."},
    "key": {
        "fr": "Nous ne connaissons pas cette organisation, ce Secteur, ce bureau ou ce pays pour "
        "le public choisi. Pour une ONG, son nom court (ex. ifla) ; pour un Secteur, ED, SC, "
        "SHS, CLT ou CI ; pour un pays, son code (ex. CO).",
    },
    "sectors": {"fr": "Choisissez les Secteurs dans la liste : ED, SC, SHS, CLT ou CI."},
    "themes": {
        "fr": "Les thèmes sont des mots séparés par des virgules, sans autres signes (ex. "
        "inclusion, apprentissage tout au long de la vie).",
    },
    "cadence": {"fr": "Choisissez une lettre mensuelle ou un résumé hebdomadaire."},
}


def text(language: str, key: str, **fields: object) -> str:
    """The string `key` in `language` (English where it has no translation), fields filled."""
    versions = STRINGS[key]
    template = versions.get(language) or versions["en"]
    return template.format(**fields) if fields else template


def field_error(language: str, field: str) -> str | None:
    """What is wrong with `field`, in `language`, if the catalogue says it there."""
    return FIELD_ERRORS.get(field, {}).get(language)


def audience_label(language: str, audience: str) -> str:
    versions = AUDIENCE_LABELS[audience]
    return versions.get(language) or versions["en"]

"""The words a reader sees for our codes: Sectors, content kinds, audiences, list columns.

The codes live in models.py; their names in every language come from the catalogue, each
with a `msgctxt` saying where the word is used (a Sector's "Culture" is not a heading's).
"""

from diffusion.i18n import Words, words


def sector_name(code: str, language: str) -> str:
    """A programme Sector's official name: Education, Éducation, التربية, 教育..."""
    w = words(language)
    names = {
        "ED": w.pgettext("Sector", "Education"),
        "SC": w.pgettext("Sector", "Natural Sciences"),
        "SHS": w.pgettext("Sector", "Social and Human Sciences"),
        "CLT": w.pgettext("Sector", "Culture"),
        "CI": w.pgettext("Sector", "Communication and Information"),
    }
    return names.get(code.upper(), code)


def heading(kind: str, language: str) -> str:
    """The section heading of a content kind or reference list."""
    w = words(language)
    headings = {
        "ngo_action": w.pgettext("section heading", "NGO actions"),
        "ngo_plan": w.pgettext("section heading", "Planned work of NGOs"),
        "field_office_activity": w.pgettext("section heading", "Field Office activities"),
        "programme_update": w.pgettext("section heading", "Programme implementation"),
        "forum_conclusion": w.pgettext("section heading", "Forum recommendations and conclusions"),
        "event": w.pgettext("section heading", "Events"),
        "focal_points": w.pgettext("section heading", "Sector focal points"),
        "expert_ngos": w.pgettext("section heading", "Expert NGOs"),
        "ngo_directory": w.pgettext("section heading", "NGO directory"),
        "national_commissions": w.pgettext("section heading", "National Commissions for UNESCO"),
    }
    return headings[kind]


def audience_title(audience: str, language: str, who: str = "") -> str:
    """What an audience's edition is called, with the key's name when it has one."""
    w = words(language)
    if who:
        keyed = {
            "ngo": w.pgettext("edition title", "%(who)s: NGO partners' newsletter", who=who),
            "sector": w.pgettext("edition title", "%(who)s: NGO actions and plans", who=who),
            "field_office": w.pgettext(
                "edition title", "%(who)s: NGO actions in your countries", who=who
            ),
            "member_state": w.pgettext(
                "edition title", "%(who)s: NGO actions and forum conclusions", who=who
            ),
            "national_commission": w.pgettext(
                "edition title", "%(who)s: NGO actions and Field Office activities", who=who
            ),
        }
        if audience in keyed:
            return keyed[audience]
    titles = {
        "ngo": w.pgettext("edition title", "NGO partners' newsletter"),
        "sector": w.pgettext("edition title", "NGO actions and plans"),
        "field_office": w.pgettext("edition title", "NGO actions in your countries"),
        "member_state": w.pgettext("edition title", "NGO actions and forum conclusions"),
        "national_commission": w.pgettext(
            "edition title", "NGO actions and Field Office activities"
        ),
        "liaison_committee": w.pgettext("edition title", "Liaison Committee digest"),
        "public": w.pgettext("edition title", "NGO-UNESCO partnership news"),
    }
    return titles[audience]


def audience_label(audience: str, language: str) -> str:
    """Who a subscriber is, as the subscription form offers it."""
    w = words(language)
    labels = {
        "public": w.pgettext("audience", "Member of the public"),
        "ngo": w.pgettext("audience", "NGO partner"),
        "sector": w.pgettext("audience", "Programme Sector"),
        "field_office": w.pgettext("audience", "Field Office"),
        "member_state": w.pgettext("audience", "Member State (Permanent Delegation)"),
        "national_commission": w.pgettext("audience", "National Commission"),
        "liaison_committee": w.pgettext("audience", "Liaison Committee"),
    }
    return labels[audience]


def columns(table: str, language: str) -> tuple[str, ...]:
    """The labels of a reference list's columns: focal points, National Commissions, or NGOs."""
    w = words(language)
    if table == "national_commissions":
        return (
            w.pgettext("column", "National Commission"),
            w.pgettext("column", "Country"),
            w.pgettext("column", "Contact"),
            w.pgettext("column", "Email"),
            w.pgettext("column", "Website"),
        )
    if table == "focal_points":
        return (
            w.pgettext("column", "Sector"),
            w.pgettext("column", "Name"),
            w.pgettext("column", "Email"),
            w.pgettext("column", "Role"),
        )
    return (
        w.pgettext("column", "Organisation"),
        w.pgettext("column", "Fields"),
        w.pgettext("column", "Countries"),
        w.pgettext("column", "Contact"),
        w.pgettext("column", "Website"),
    )


def labelled(w: Words, label: str, value: str) -> str:
    """`Name: value` with the language's punctuation (French: `Nom : valeur`)."""
    return w.gettext("%(label)s: %(value)s", label=label, value=value)

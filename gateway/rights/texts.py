"""The words of an extract, in Swedish and English.  Pure data and small pure helpers."""

from __future__ import annotations

import gettext
from functools import cache
from typing import Literal

import pycountry

Lang = Literal["sv", "en"]
LANGS: tuple[Lang, ...] = ("sv", "en")

LABELS: dict[Lang, dict[str, str]] = {
    "sv": {
        "title": "Registerutdrag",
        "subtitle": "Information enligt artikel 15 i dataskyddsförordningen (GDPR)",
        "intro": "Du har begärt att få veta vilka personuppgifter om dig vi har lämnat ut, till vem och på vilken "
                 "grund. Här är samtliga utlämnanden som finns i vår logg.",
        "generated_at": "Upprättat",
        "request": "Ärende",
        "subject": "Registrerad (referens)",
        "controller": "Personuppgiftsansvarig",
        "dpo": "Dataskyddsombud",
        "authority": "Tillsynsmyndighet",
        "source": "Varifrån uppgifterna kommer",
        "purposes": "Ändamål, rättslig grund och lagringstid",
        "purpose": "Ändamål",
        "lawful_basis": "Rättslig grund",
        "retention": "Lagringstid",
        "disclosures": "Utlämnanden",
        "none": "Vi har inte lämnat ut några uppgifter om dig.",
        "date": "Datum",
        "recipient": "Mottagare",
        "country": "Land",
        "transfer": "Grund för överföring",
        "fields": "Uppgifter",
        "values": "Utlämnade värden",
        "withheld": "Ej utlämnade uppgifter",
        "outcome": "Utfall",
        "rights": "Dina rättigheter",
        "automated": "Automatiserat beslutsfattande",
        "verification": "Kontroll av utdraget",
        "checkpoint": "Signerad kontrollpunkt",
        "entries": "poster",
    },
    "en": {
        "title": "Register extract",
        "subtitle": "Information under Article 15 of the General Data Protection Regulation (GDPR)",
        "intro": "You asked which personal data about you we disclosed, to whom and on what basis. These are all "
                 "the disclosures in our log.",
        "generated_at": "Generated",
        "request": "Request",
        "subject": "Data subject (reference)",
        "controller": "Controller",
        "dpo": "Data protection officer",
        "authority": "Supervisory authority",
        "source": "Where the data comes from",
        "purposes": "Purposes, legal basis and retention",
        "purpose": "Purpose",
        "lawful_basis": "Legal basis",
        "retention": "Retention",
        "disclosures": "Disclosures",
        "none": "We have not disclosed any data about you.",
        "date": "Date",
        "recipient": "Recipient",
        "country": "Country",
        "transfer": "Transfer basis",
        "fields": "Data",
        "values": "Values disclosed",
        "withheld": "Data not disclosed",
        "outcome": "Outcome",
        "rights": "Your rights",
        "automated": "Automated decision-making",
        "verification": "Verifying this extract",
        "checkpoint": "Signed checkpoint",
        "entries": "entries",
    },
}

SOURCE: dict[Lang, str] = {
    "sv": "Uppgifterna lämnades när domännamnet beställdes, av dig eller av den som beställde det för din räkning "
          "(till exempel din arbetsgivare eller en återförsäljare), via vårt beställningssystem.",
    "en": "The data was provided when the domain name was ordered, by you or by whoever ordered it on your behalf "
          "(for example your employer or a reseller), through our ordering system.",
}

AUTOMATED: dict[Lang, str] = {
    "sv": "Vilka uppgifter som lämnas ut till vilken mottagare avgörs automatiskt av fastställda regler per "
          "mottagare (uppgiftsminimering och regler för överföring till tredjeland). Ingen profilering sker.",
    "en": "Which data goes to which recipient is decided automatically by fixed per-recipient rules (data "
          "minimisation and the rules for transfers to third countries). No profiling takes place.",
}

RIGHTS: dict[Lang, list[tuple[str, str, str]]] = {
    "sv": [
        ("rectification", "16", "Rätt till rättelse (art. 16): du kan begära att felaktiga uppgifter om dig rättas. "
                                "Vi underrättar då varje mottagare ovan (art. 19)."),
        ("erasure", "17", "Rätt till radering (art. 17): du kan begära att uppgifterna raderas. Så länge ett "
                          "domännamn är registrerat måste registret ha en innehavare; uppgifterna hos registret kan "
                          "därför raderas först när domännamnet avregistreras eller överlåts."),
        ("restriction", "18", "Rätt till begränsning (art. 18): du kan begära att uppgifterna inte lämnas ut vidare, "
                              "till exempel medan en begäran om rättelse prövas."),
        ("objection", "21", "Rätt att invända (art. 21): du kan när som helst invända mot direktmarknadsföring; då "
                            "upphör utlämnandet för det ändamålet."),
        ("complaint", "77", "Rätt att klaga (art. 77): du kan lämna klagomål till Integritetsskyddsmyndigheten "
                            "(IMY), www.imy.se."),
    ],
    "en": [
        ("rectification", "16", "Right to rectification (Art. 16): you may ask us to correct inaccurate data about "
                                "you. We then inform every recipient above (Art. 19)."),
        ("erasure", "17", "Right to erasure (Art. 17): you may ask us to erase the data. While a domain name is "
                          "registered its registry must have a holder, so data held by the registry can be erased "
                          "only once the domain name is deleted or transferred."),
        ("restriction", "18", "Right to restriction (Art. 18): you may ask us not to disclose the data further, for "
                              "example while a request for rectification is examined."),
        ("objection", "21", "Right to object (Art. 21): you may object to direct marketing at any time; disclosures "
                            "for that purpose then stop."),
        ("complaint", "77", "Right to lodge a complaint (Art. 77): you may complain to the Swedish Authority for "
                            "Privacy Protection, Integritetsskyddsmyndigheten (IMY), www.imy.se."),
    ],
}

OUTCOMES: dict[Lang, dict[str, str]] = {
    "sv": {"delivered": "Utlämnat", "failed": "Misslyckades (mottagaren tog inte emot uppgifterna)",
           "blocked": "Stoppat: inget skickades", "refused": "Avvisat av mottagaren: uppgifterna sparades inte",
           "possibly_delivered": "Kanske utlämnat: skickat, men inget svar kom (mottagaren kan ha uppgifterna)",
           "deleted": "Raderat hos mottagaren"},
    "en": {"delivered": "Disclosed", "failed": "Failed (the recipient did not accept the data)",
           "blocked": "Stopped: nothing was sent", "refused": "Refused by the recipient: the data was not kept",
           "possibly_delivered": "Possibly disclosed: sent, but no answer came (the recipient may hold the data)",
           "deleted": "Deleted at the recipient"},
}

VALUE_NOTES: dict[Lang, dict[str, str]] = {
    "sv": {"erased": "raderade (krypteringsnyckeln är förstörd; endast uppgifter om utlämnandet finns kvar)",
           "purged": "gallrade efter lagringstiden (endast uppgifter om utlämnandet finns kvar)",
           "none_sent": "inga värden lämnades ut"},
    "en": {"erased": "erased (the encryption key was destroyed; only the record of the disclosure remains)",
           "purged": "purged after the retention period (only the record of the disclosure remains)",
           "none_sent": "no values were disclosed"},
}

VERIFY: dict[Lang, str] = {
    "sv": "Varje utlämnande ovan ingår i vår manipuleringssäkra logg (ett Merkle-träd enligt RFC 9162). Den "
          "maskinläsbara versionen av utdraget (JSON) innehåller loggraderna, inklusionsbevis och en signerad "
          "kontrollpunkt; vem som helst kan kontrollera den med vår publicerade publika nyckel: "
          "gateway extract verify UTDRAG.json --public-key NYCKEL.pem",
    "en": "Every disclosure above is part of our tamper-evident log (a Merkle tree as in RFC 9162). The "
          "machine-readable extract (JSON) carries the log rows, inclusion proofs and a signed checkpoint; anyone "
          "can check it with our published public key: gateway extract verify EXTRACT.json --public-key KEY.pem",
}


def transfer_text(category: str, article: str | None, instrument: str | None, lang: Lang) -> str:
    """The Chapter V basis of one disclosure, in words (Art. 15(2): name the safeguard)."""
    art = article or "?"
    inst = instrument or ""
    sv = lang == "sv"
    match category:
        case "no_personal_data":
            return "Inga personuppgifter lämnades ut" if sv else "No personal data was disclosed"
        case "eea":
            return ("Inom EU/EES: ingen överföring till tredjeland" if sv
                    else "Within the EU/EEA: no transfer to a third country")
        case "adequacy":
            return (f"Tredjeland med beslut om adekvat skyddsnivå (art. {art}): {inst}" if sv
                    else f"Third country with an adequacy decision (Art. {art}): {inst}")
        case "safeguard":
            return (f"Tredjeland; lämpliga skyddsåtgärder (art. {art}): {inst}. En kopia kan begäras av oss." if sv
                    else f"Third country; appropriate safeguards (Art. {art}): {inst}. You may ask us for a copy.")
        case "derogation":
            return (f"Tredjeland; undantag för särskilda situationer (art. {art})" if sv
                    else f"Third country; derogation for a specific situation (Art. {art})")
        case "blocked":
            return ("Ingen giltig grund för överföring: inget skickades" if sv
                    else "No valid basis for the transfer: nothing was sent")
    return category


def safeguard_text(category: str, article: str | None, instrument: str | None) -> str | None:
    """Art. 15(2): the safeguard a third-country transfer rests on (None inside the EEA)."""
    if category in ("adequacy", "safeguard", "derogation") and article:
        return f"Art. {article}" + (f": {instrument}" if instrument else "")
    return None


@cache
def _sv_countries() -> gettext.NullTranslations:
    try:
        return gettext.translation("iso3166-1", pycountry.LOCALES_DIR, languages=["sv"])
    except OSError:
        return gettext.NullTranslations()


def country_name(code: str, lang: Lang) -> str:
    c = pycountry.countries.get(alpha_2=code)
    if c is None:
        return code
    name = str(getattr(c, "common_name", None) or c.name) if lang == "en" else _sv_countries().gettext(c.name)
    return name


# -- holdings: who holds the data now (the letter's section, the API and the staff page) --------------

HOLDINGS: dict[Lang, dict[str, str]] = {
    "sv": {
        "heading": "Vem har dina uppgifter nu",
        "intro": "Här är de mottagare som har uppgifter om dig i dag, vilka objekt uppgifterna finns i, sedan när, "
                 "vilka uppgifter och vad som gör att de upphör. Utlämnanden som inte längre finns hos mottagaren "
                 "står kvar i loggen ovan.",
        "none": "Ingen mottagare har uppgifter om dig i dag.",
        "object": "Objekt",
        "since": "Sedan",
        "fields": "Uppgifter",
        "ends": "Upphör",
        "own": "Vår egen kopia (loggens krypterade värden)",
        "contact": "Kontaktobjekt hos registret",
        "domain": "Domännamn",
        "copy": "Kopia hos mottagaren",
    },
    "en": {
        "heading": "Who holds your data now",
        "intro": "These are the recipients that hold data about you today, the objects it is in, since when, which "
                 "data and what ends it. Disclosures no longer held by their recipient stay in the log above.",
        "none": "No recipient holds data about you today.",
        "object": "Object",
        "since": "Since",
        "fields": "Data",
        "ends": "Ends",
        "own": "Our own copy (the log's encrypted values)",
        "contact": "Contact object at the registry",
        "domain": "Domain name",
        "copy": "Copy held by the recipient",
    },
}

_END_REASONS: dict[Lang, dict[str, str]] = {
    "sv": {"deleted": "raderat", "transferred_out": "flyttat till annan registrar", "expired": "utgånget",
           "failed": "registreringen genomfördes inte"},
    "en": {"deleted": "deleted", "transferred_out": "transferred away", "expired": "expired",
           "failed": "the registration did not go through"},
}

_ENDS: dict[Lang, dict[str, str]] = {
    "sv": {
        "contact_in_use": "raderas när ingen av våra domäner använder det",
        "contact_unused": "ingen av våra domäner använder det längre: radering hos registret väntar",
        "kept_by_registry": "registret behåller det (radering nekad, {code}); fråga registret",
        "delete_unanswered": "radering skickad utan svar: kan redan vara raderat; kontrolleras med registret",
        "domain_active": "radering, flytt till annan registrar eller utgång den {at}",
        "domain_active_unknown": "radering, flytt till annan registrar eller utgång (datum ännu okänt)",
        "domain_ended": "upphörde {at} ({reason}); radering hos registret väntar",
        "domain_delete_unconfirmed": "upphörde {at} ({reason}); registret har inte bekräftat raderingen",
        "escrow_active": "finns i depositionerna så länge registreringen består; depositarien sparar dem {reason}",
        "escrow_ended": "nästa fullständiga deposition efter att registreringen upphörde saknar dem; depositarien "
                        "sparar äldre depositioner {reason}",
        "partner_copy": "mottagarens lagringstid: {reason}",
        "partner_copy_unknown": "tills mottagaren raderar den (vi kan begära radering, art. 17.2)",
        "own_while_active": "sparas så länge registreringen består, därefter {reason} månader",
        "own_purge": "gallras den {at}",
        "own_unconfigured": "ingen lagringstid angiven: sparas tills en anges",
        "own_erased": "raderade (nyckeln är förstörd); den oläsbara krypterade texten gallras den {at}",
        "own_erased_unknown": "raderade (nyckeln är förstörd); den oläsbara krypterade texten gallras efter "
                              "lagringstiden",
    },
    "en": {
        "contact_in_use": "deleted when no domain of ours uses it",
        "contact_unused": "no domain of ours uses it any more: deletion at the registry pending",
        "kept_by_registry": "kept by the registry (refused delete, {code}) — ask the registry",
        "delete_unanswered": "deletion sent, no answer: may already be deleted — confirm with the registry",
        "domain_active": "deletion, transfer away or expiry on {at}",
        "domain_active_unknown": "deletion, transfer away or expiry (date not known yet)",
        "domain_ended": "ended {at} ({reason}); deletion at the registry pending",
        "domain_delete_unconfirmed": "ended {at} ({reason}); the registry has not confirmed the deletion",
        "escrow_active": "in the escrow deposits while the registration is active; the agent keeps them {reason}",
        "escrow_ended": "the first full deposit after the registration ended drops it; the agent keeps older "
                        "deposits {reason}",
        "partner_copy": "the recipient's retention: {reason}",
        "partner_copy_unknown": "until the recipient deletes it (we may ask it to, Art. 17(2))",
        "own_while_active": "kept while the registration is ours, then {reason} months",
        "own_purge": "purged on {at}",
        "own_unconfigured": "no retention period configured: kept until one is set",
        "own_erased": "erased (the key was destroyed); the unreadable ciphertext is purged on {at}",
        "own_erased_unknown": "erased (the key was destroyed); the unreadable ciphertext is purged after the "
                              "retention period",
    },
}


def holding_end_text(kind: str, lang: Lang, *, at: str | None = None, reason: str | None = None,
                     code: str | None = None) -> str:
    """What ends one holding, in words (``gateway.services.holdings.End``'s ``kind`` and facts)."""
    texts = _ENDS[lang]
    if kind in ("partner_copy", "escrow_active", "escrow_ended") and not reason:
        kind = "partner_copy_unknown" if kind == "partner_copy" else kind
        reason = reason or ("enligt avtalet" if lang == "sv" else "as the agreement says")
    if kind == "own_erased" and at is None:
        kind = "own_erased_unknown"
    if kind == "domain_active" and at is None:
        kind = "domain_active_unknown"
    template = texts.get(kind, kind)
    return template.format(at=(at or "?")[:10], reason=_END_REASONS[lang].get(reason or "", reason or "?"),
                           code=code or "?")

"""Intent classification: what a person asked for, read from the subject and the new body text.

Pure functions over strings. Exact commands (``JOIN circular``) come first; free text in English,
German, French, Spanish, Italian and Dutch falls back to the keyword tables below, matched against
:func:`normalise`-d text (so they are written without accents or capitals).

Group matching (:func:`match_groups`): a group is named *strongly* by its slug, name or an alias,
and *weakly* by a distinctive word of its name; weak matches count only when no group is named
strongly. Words true of every group (public, procurement, group, interest, initiative, network,
sustainable, responsible, buyer) and function words are never distinctive: the whole network is
about sustainable public procurement. Words are compared whole, a plural ``s`` dropped from words
over four letters. Names of three letters or fewer ("it", "ict", "bbi") count only as the whole
text (a command's argument), in upper case in a text that is not shouted, or next to a word for
"group" ("the ict group"): so "it would be great" names no group, but "IT tenders" does.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Final

from mailflow.core.model import Decision, GroupDecision, Intent, IntentKind, ParsedMail, Verdict

if TYPE_CHECKING:
    from collections.abc import Sequence

    from mailflow.core.model import GroupRef

# Free-text phrasings per intent and language, as regular expressions over normalised text.
# The classifier tries the intents in the order of _INTENTS: a leave request often contains a
# join word ("no longer participate"), and a status question often names the request it is about.
_START: Final = {
    "en": r"(?:start(?:ing)?|creat(?:e|ing)|set(?:ting)? up|setup|launch(?:ing)?|establish(?:ing)?"
    r"|form|found(?:ing)?|propos(?:e|ing|al)(?: for)?|initiat(?:e|ing)|open(?:ing)?)"
    r"(?: (?:a|an|the|our|own|new|interest|working|thematic|dedicated|separate|additional))*"
    r" groups?|new interest group",
    "de": r"neue (?:interessen)?gruppe|grunden|ins leben rufen",
    "fr": r"(?:creer|lancer|monter|fonder|constituer|proposer) (?:un |le |notre )?"
    r"(?:nouveau )?groupe|nouveau groupe",
    "es": r"(?:crear|lanzar|formar|fundar|proponer|iniciar|poner en marcha) (?:un |el |nuestro )?"
    r"(?:nuevo )?grupo|nuevo grupo",
    "it": r"(?:creare|avviare|lanciare|fondare|proporre|costituire) (?:un |il |nostro )?(?:nuovo )?"
    r"gruppo|nuovo gruppo",
    "nl": r"nieuwe (?:interesse)?groep|groep (?:\w+ ){0,3}(?:starten|oprichten|opzetten)|oprichten",
}
_LEAVE: Final = {
    "en": r"unsubscribe|remove (?:us|me|our \w+)|leav(?:e|ing) (?:\w+ ){0,3}(?:groups?|network)"
    r"|(?:to|please) leave(?! (?:us|me|it|a|an|this|that|your|my)\b)"
    r"|no longer (?:\w+ ){0,2}(?:participat\w+|take part|members?|part of|interested)"
    r"|withdraw(?:ing)?|opt(?:ing)? out|cancel (?:our|my) (?:membership|participation)"
    r"|stop (?:participating|being)|quit(?:ting)?",
    "de": r"austreten|austritt|abmelden|verlassen|nicht (?:\w+ ){0,2}mehr (?:\w+ ){0,3}teilnehmen"
    r"|kundigen|entfernen sie (?:uns|mich)|abbestellen",
    "fr": r"quitter|desinscri(?:re|ption)|desabonner|ne (?:\w+ ){0,2}plus (?:\w+ ){0,2}participer"
    r"|(?:nous |se )?retirer",
    "es": r"abandonar|dar(?:nos|me|se)? de baja|dejar (?:de participar|el grupo)"
    r"|salir(?:nos)? del grupo|retirar(?:nos|me)|ya no (?:\w+ ){0,2}(?:participar|formar parte)",
    "it": r"lasciare|uscire|disiscriver(?:ci|mi|e)|cancellar(?:ci|mi)|ritirar(?:ci|mi)"
    r"|non (?:\w+ ){0,2}piu (?:\w+ ){0,2}partecipare|smettere di partecipare",
    "nl": r"uitschrijven|afmelden|verlaten|niet meer (?:\w+ ){0,2}deelnemen|opzeggen",
}
_STATUS: Final = {
    "en": r"status (?:of|on)|(?:what|how) (?:is|s) (?:the )?status|status update|heard back"
    r"|any (?:news|updates?) (?:on|about|regarding|concerning)"
    r"|where (?:is|are) (?:our|my) (?:request|application)",
    "de": r"(?:stand|status) (?:der|unserer|meiner) (?:anfrage|antrag|anmeldung)",
    "fr": r"statut (?:de|du)|ou en est|etat de (?:notre|ma) (?:demande|candidature)",
    "es": r"estado de (?:nuestra|mi|la) (?:solicitud|peticion)|en que estado",
    "it": r"stato (?:della|di) (?:nostra |mia )?(?:richiesta|domanda)|a che punto",
    "nl": r"status van|stand van zaken",
}
_JOIN: Final = {
    "en": r"join(?:ing)?(?! (?:us|our|me)\b)|tak(?:e|ing) part|participat(?:e|ing|ion)"
    r"|become (?:a )?members?|sign (?:us|me) up|be (?:a )?part of|get involved|add (?:us|me)"
    r"|membership|register (?:us|me)|(?:are|is|am|be) (?:very )?interested in",
    "de": r"beitreten|beitritt|teilnehmen|teilnahme|mitmachen|mitglied werden|mitwirken|anmelden"
    r"|beteiligen",
    "fr": r"rejoindre|participer|participation|adherer|devenir membres?|faire partie|inscrire",
    "es": r"unir(?:nos|me|se)|participar|participacion|formar parte|ser miembros?"
    r"|adherir(?:nos|se)?|sumar(?:nos|se)|inscribir(?:nos|me)?",
    "it": r"aderire|partecipare|partecipazione|unir(?:ci|mi)|far parte|iscriver(?:ci|mi|e)",
    "nl": r"deelnemen|deelname|aansluiten|lid worden|meedoen",
}
_HELP: Final = {
    "en": r"help|how does (?:this|it|the \w+) work|(?:which|what) groups|list of (?:the )?groups"
    r"|instructions",
    "de": r"hilfe|wie funktioniert|welche gruppen",
    "fr": r"aide|comment (?:ca|cela|ceci) (?:marche|fonctionne)|quels groupes",
    "es": r"ayuda|como funciona|que grupos",
    "it": r"aiuto|come funziona|quali gruppi",
    "nl": r"hulp|hoe werkt|welke groepen",
}
# Sentences that state a new group's aim.
_AIM: Final = {
    "en": r"aims?|goals?|objectives?|purpose|we (?:want|would like|wish|hope|plan|intend) to"
    r"|we d like to",
    "de": r"ziele?|zweck|wir (?:wollen|mochten|planen)",
    "fr": r"(?:notre|le) but|objectifs?|nous (?:voulons|souhaitons|aimerions)",
    "es": r"objetivos?|finalidad|proposito|queremos|quisieramos|nos gustaria",
    "it": r"obiettiv[oi]|scopo|vogliamo|vorremmo",
    "nl": r"doel|willen we|we willen",
}


def _words(text: str) -> frozenset[str]:
    """Return the words of a space-separated table, with ``_`` standing for a space."""
    return frozenset(word.replace("_", " ") for word in text.split())


# Words that turn "we would like to join" into "we would not like to join", per language, and how many
# words before the verb they may stand.
_NEGATIONS: Final = _words("not t never no nicht kein keine keinen pas ne jamais non niet geen nunca nessun")
_NEGATION_REACH: Final = 4


def _compile(table: dict[str, str]) -> re.Pattern[str]:
    return re.compile(r"\b(?:" + "|".join(table.values()) + r")\b")


_START_RE: Final = _compile(_START)
_INTENTS: Final = (
    (IntentKind.START, _START_RE),
    (IntentKind.LEAVE, _compile(_LEAVE)),
    (IntentKind.STATUS, _compile(_STATUS)),
    (IntentKind.JOIN, _compile(_JOIN)),
    (IntentKind.HELP, _compile(_HELP)),
)
_AIM_RE: Final = _compile(_AIM)
# Exact commands are the values of these intents; a command argument starting with these words
# is an invitation ("Join us for our webinar"), not a command.
_COMMANDS: Final = _words("join leave start help status")
# A facilitator's meeting commands: MEETING <group>, MEETING UPDATE <id>, MEETING CANCEL <id>, and the
# spellings people reach for (SCHEDULE <group>, RESCHEDULE <id>, CANCEL MEETING <id>).
_MEETING_WORDS: Final = _words("meeting schedule reschedule cancel")
_MEETING_CHANGE: Final = re.compile(
    r"(?i)(?:meeting\s+)?(update|change|move|reschedule|cancel)?\s*(?:meeting\s+)?#?(\d+)"
)
_DIGEST_CHOICES: Final = {
    "weekly": "weekly",
    "week": "weekly",
    "monthly": "monthly",
    "month": "monthly",
    "off": "off",
    "stop": "off",
    "none": "off",
    "never": "off",
    "unsubscribe": "off",
    "on": "weekly",
}
_NOT_AN_ARGUMENT: Final = _words("us me our")
# Words after "Start" in a subject that make it an ordinary word, not the command ("Start of the project").
_NOT_A_TOPIC: Final = _words("of date time from at with")
# Function words and words that describe the whole network rather than one group (stemmed).
_STOPWORDS: Final = _words(
    "a an and the of for on in to with by at our de des du la le les el los las der die das und et"
    " y e i di del della il public procurement procure purchase purchasing group interest"
    " initiative network sustainable sustainability responsible buyer"
)
_GROUP_WORDS: Final = _words("group gruppe gruppen groupe grupo gruppo gruppi groep ig")
# Words that may stand beside a group's name in a subject that is only a request for that group.
_FILLER: Final = _STOPWORDS | _GROUP_WORDS | _words("please request hello hi thanks")
# Subjects that say nothing, so a command on the body's first line is read instead.
_GENERIC_SUBJECTS: Final = _words(
    "no_subject request question hello hi enquiry inquiry command interest_group interest_groups"
    " anfrage demande solicitud richiesta aanvraag",
) | {""}
_SHORT: Final = 3
_FEW_WORDS: Final = 4
_LETTERS: Final = str.maketrans({"ø": "o", "ł": "l", "đ": "d", "æ": "ae", "œ": "oe", "\u0131": "i"})
_NON_WORD: Final = re.compile(r"[\W_]+")
_WORD: Final = re.compile(r"[^\W_]+")
_PREFIXES: Final = re.compile(
    r"(?i)^(?:\s*(?:re|fwd?|fw|aw|wg|tr|rv|r|i|antw|sv|vs|odp)\s*(?:\[\d+\])?\s*:)+"
)
_TAG: Final = re.compile(r"(?i)\[IG-[^\]]*\]")
_COMMAND: Final = re.compile(r"(?s)[\s*_]*([^\W\d_]+)[\s*_]*[:\-\u2013\u2014]?\s*(.*?)[\s.!?*_]*")
# The keyword is a Verdict value, optionally in the past tense ("Approved", "rejected").
_DECISION: Final = re.compile(r"(?is)(approve|reject|info)(?:(?<=approve)d|(?<=reject)ed)?\b(.*)")
_SENTENCE_END: Final = re.compile(r"(?<=[.!?])\s+|\n\s*\n")
_GROUP_NOUN: Final = re.compile(
    r"(?i)\b(?:interests? ?|interessen)?(?:group|gruppe|groupe|grupo|gruppo|groep)\w*"
)
_TOPIC: Final = re.compile(
    r"(?is)\b(?:on|about|for|around|regarding|concerning|zu[mr]?|über|ueber|sur|sobre|su|sul|sulla"
    r"|sui|over)\s+(?P<topic>.+)"
)
_TOPIC_LEAD: Final = re.compile(r"(?i)^(?:the )?(?:topic|theme|thema|thème|tema)\s+(?:of\s+)?")
_TOPIC_TAIL: Final = re.compile(r"(?i)(?:\s+(?:gründen|starten|einrichten|aufbauen|oprichten))?[\s.!?;:,]*$")


def normalise(text: str) -> str:
    """Fold text for tolerant matching: lower case, no accents, single spaces between words.

    Args:
        text: any text.

    Returns:
        The text case-folded, with accents stripped (NFKD, combining marks dropped) and every run
        of whitespace and punctuation collapsed to one space, without leading or trailing spaces.

    """
    bare = text.casefold()
    if not bare.isascii():
        decomposed = unicodedata.normalize("NFKD", bare.translate(_LETTERS))
        bare = "".join(char for char in decomposed if not unicodedata.combining(char))
    return _NON_WORD.sub(" ", bare).strip()


@dataclass(frozen=True, slots=True)
class _Found:
    """Groups named in a text, the words that named them and how many other words it has."""

    slugs: tuple[str, ...] = ()
    text: str = ""
    leftover: int = 0


def _stem(word: str) -> str:
    return word[:-1] if len(word) > _SHORT + 1 and word[-1] == "s" and word[-2] != "s" else word


def _tokens(text: str) -> list[tuple[str, str]]:
    """Return (stemmed normalised word, word as written) pairs."""
    return [
        (_stem(word), match.group())
        for match in _WORD.finditer(unicodedata.normalize("NFC", text))
        for word in normalise(match.group()).split()
    ]


def _short_ok(span: range, tokens: list[tuple[str, str]], text: str) -> bool:
    if len(span) == len(tokens):
        return True
    written = " ".join(original for _, original in tokens[span.start : span.stop])
    if written.isupper() and (any(char.islower() for char in text) or len(tokens) <= _FEW_WORDS):
        return True
    neighbours = {tokens[i][0] for i in (span.start - 1, span.stop) if 0 <= i < len(tokens)}
    return bool(neighbours & _GROUP_WORDS)


def _spans(phrase: tuple[str, ...], tokens: list[tuple[str, str]], text: str) -> list[range]:
    words, size = tuple(word for word, _ in tokens), len(phrase)
    spans = [range(i, i + size) for i in range(len(words)) if words[i : i + size] == phrase]
    if len("".join(phrase)) > _SHORT:
        return spans
    return [span for span in spans if _short_ok(span, tokens, text)]


@functools.lru_cache(maxsize=1024)
def _phrases(group: GroupRef) -> tuple[frozenset[tuple[str, ...]], frozenset[tuple[str, ...]]]:
    """The phrases that name ``group`` (slug, name, aliases), and its name's other single words."""
    names = frozenset(tuple(w for w, _ in _tokens(n)) for n in (group.slug, group.name, *group.aliases))
    words = frozenset((word,) for word, _ in _tokens(group.name) if word not in _STOPWORDS)
    return names, words - names


def _find(text: str, groups: Sequence[GroupRef]) -> _Found:
    tokens = _tokens(text)
    strong: dict[str, list[range]] = {}
    weak: dict[str, list[range]] = {}
    for group in groups:
        names, words = _phrases(group)
        for tier, phrases in ((strong, names), (weak, words)):
            if spans := [s for phrase in phrases if phrase for s in _spans(phrase, tokens, text)]:
                tier[group.slug] = spans
    chosen = strong or weak
    if not chosen:
        return _Found(leftover=sum(word not in _FILLER for word, _ in tokens))
    covered = {index for spans in chosen.values() for span in spans for index in span}
    best = [max(spans, key=len) for spans in chosen.values()]
    return _Found(
        slugs=tuple(chosen),
        text=", ".join(" ".join(tokens[i][1] for i in span) for span in best),
        leftover=sum(w not in _FILLER for i, (w, _) in enumerate(tokens) if i not in covered),
    )


def match_groups(text: str, groups: Sequence[GroupRef]) -> tuple[str, ...]:
    """Slugs of the groups that ``text`` names, in the order of ``groups``.

    Args:
        text: a command argument, a subject or a sentence, as written.
        groups: the configured groups.

    Returns:
        The slugs of every group named (several when the text is ambiguous), or ``()``. The
        matching rules are described in this module's docstring.

    """
    return _find(text, groups).slugs


_GROUP_DECISION: Final = re.compile(
    r"(?i)(?P<word>extend(?:ed)?|close[ds]?)\b[\s:,.!-]*(?:by\s+|for\s+)?(?P<n>\d{1,3})?\s*(?P<unit>months?|years?)?"
)
_MAX_EXTENSION_MONTHS: Final = 60
DEFAULT_EXTENSION_MONTHS: Final = 12
"""What a bare EXTEND means: one more year."""


def parse_group_decision(text: str) -> GroupDecision | None:
    """Read EXTEND [n months|years] or CLOSE from the first non-empty line of the new text.

    A bare EXTEND is one more year; more than five years at once is not read as a decision (it is
    more likely a typo than a plan). A quoted line never decides.
    """
    first = next((line.strip() for line in text.splitlines() if line.strip()), "")
    if first.startswith(">"):
        return None
    match = _GROUP_DECISION.match(re.sub(r"[*_~`]", "", first).lstrip("#\ufeff\u200b \t"))
    if match is None:
        return None
    if match["word"].lower().startswith("close"):
        return GroupDecision(extend=False)
    number = int(match["n"]) if match["n"] else None
    if number is None:
        return GroupDecision(extend=True, months=DEFAULT_EXTENSION_MONTHS)
    months = number * 12 if (match["unit"] or "").lower().startswith("year") else number
    if not 0 < months <= _MAX_EXTENSION_MONTHS:
        return None
    return GroupDecision(extend=True, months=months)


def parse_decision(text: str) -> Decision | None:
    """Read an approver's decision from the first non-empty line of the new text.

    The line must start with APPROVE(D), REJECT(ED) or INFO in any case, optionally wrapped in
    Markdown emphasis (``**APPROVE**``). What follows the keyword, minus leading punctuation, and
    the lines after it up to a blank or quoted line, joined with spaces, is the reason or question.
    A keyword directly followed by ``?`` is a question, not a decision. A line starting with ``>``
    is quoted text and never decides.

    Args:
        text: the new text of a reply, quoted history already removed.

    Returns:
        The decision, or None when the first line carries no decision.

    """
    lines = text.splitlines()
    first = next((i for i, line in enumerate(lines) if line.strip()), None)
    if first is None:
        return None
    match = _DECISION.match(lines[first].strip().lstrip("*_~#`\ufeff\u200b \t"))
    if match is None or match[2].lstrip("*_~` \t").startswith("?"):
        return None
    parts = [match[2]]
    for line in lines[first + 1 :]:
        if not line.strip() or line.lstrip().startswith(">"):
            break
        parts.append(line)
    rest = " ".join(" ".join(parts).split()).lstrip("*_~`:;,.!-\u2013\u2014 ").rstrip("*")
    return Decision(Verdict(match[1].casefold()), rest.strip())


def _clean_subject(subject: str) -> str:
    return " ".join(_PREFIXES.sub("", _TAG.sub(" ", subject)).split())


def _sentences(text: str) -> list[str]:
    return [part.strip() for part in _SENTENCE_END.split(text) if part.strip()]


def _group_intent(kind: IntentKind, found: _Found, text: str = "", *, exact: bool) -> Intent:
    one = found.slugs[0] if len(found.slugs) == 1 else None
    candidates = () if one else found.slugs
    return Intent(kind, one, candidates, text or found.text, exact=exact)


def _topic(sentence: str) -> str:
    noun = _GROUP_NOUN.search(sentence)
    match = _TOPIC.search(sentence, noun.end() if noun else 0)
    if match is None:
        return ""
    topic = re.split(r"\s*\n\s*(?=[A-ZÀ-Ý])", match["topic"])[0]
    topic = _TOPIC_TAIL.sub("", _TOPIC_LEAD.sub("", topic))
    return " ".join(topic.split())


def _aim(sentences: list[str], skip: str) -> str:
    aims = [s for s in sentences if s != skip and _AIM_RE.search(normalise(s))]
    return " ".join(" ".join(aims).split())


def _meeting(word: str, argument: str, groups: Sequence[GroupRef]) -> Intent | None:
    """MEETING <group> schedules; MEETING UPDATE|CANCEL <id> (and their variants) change one meeting."""
    change = _MEETING_CHANGE.fullmatch(argument)
    if change is not None:
        verb = "cancel" if "cancel" in {word, (change[1] or "").lower()} else "update"
        if word == "meeting" and change[1] is None:
            return None  # "MEETING 12" says neither what to do nor for which group
        return Intent(IntentKind.MEETING, topic=f"{verb} {int(change[2])}", exact=True)
    if word in {"cancel", "reschedule"}:
        return None  # "Cancel our membership" is not a meeting command
    found = _group_intent(IntentKind.MEETING, _find(argument, groups), argument, exact=True)
    return replace(found, topic="schedule")


def _digest(argument: str) -> Intent:
    """DIGEST weekly|monthly|off (also "DIGEST stop", "DIGEST unsubscribe"): how often the digest comes."""
    word = normalise(argument).partition(" ")[0]
    choice = _DIGEST_CHOICES.get(word, "")
    return Intent(IntentKind.DIGEST, topic=choice, exact=True)


def _update(argument: str, body: str, groups: Sequence[GroupRef]) -> Intent | None:
    """UPDATE <group>: a facilitator's update on the group (the group may be named in the body instead).

    Without a group it is no command: "Update on our request?" asks for a status.
    """
    found = _find(argument, groups) if argument else _find(body, groups)
    if not found.slugs or _MEETING_CHANGE.fullmatch(argument):
        return None
    return _group_intent(IntentKind.UPDATE, found, argument, exact=True)


def _service_command(word: str, argument: str, body: str, groups: Sequence[GroupRef]) -> Intent | None:
    """The commands of members and facilitators beyond requests: DIGEST, UPDATE and the meeting words."""
    if word == "digest":
        return _digest(argument)
    if word == "update":
        return _update(argument, body, groups)
    return _meeting(word, argument, groups)


def _start(argument: str, body: str) -> Intent | None:
    """START <topic>, the topic from the subject or else from the body; the aim from the body."""
    if normalise(argument).partition(" ")[0] in _NOT_A_TOPIC:
        return None  # "Start of our participation", "Start date": the word, not the command
    said = f"start {argument}"
    if argument and _START_RE.search(normalise(said)):
        argument = _topic(said) or argument  # "START a group on green roofs" proposes "green roofs"
    starts = [s for s in _sentences(body) if _START_RE.search(normalise(s))]
    topic = argument or (_topic(starts[0]) if starts else "")
    aim = " ".join(body.split()) if len(body.split()) > _FEW_WORDS else ""
    return Intent(IntentKind.START, topic=topic, aim=aim, exact=True)


def _command(line: str, body: str, groups: Sequence[GroupRef]) -> Intent | None:
    match = _COMMAND.fullmatch(line)
    word = normalise(match[1]) if match is not None else ""
    if match is not None and (word in _MEETING_WORDS or word in {"digest", "update"}):
        return _service_command(word, " ".join(match[2].split()), body, groups)
    if match is None or normalise(match[1]) not in _COMMANDS:
        return None
    kind, argument = IntentKind(normalise(match[1])), " ".join(match[2].split())
    if normalise(argument).partition(" ")[0] in _NOT_AN_ARGUMENT:
        return None
    if kind in {IntentKind.HELP, IntentKind.STATUS}:
        return Intent(kind, exact=True) if not argument else None
    if kind is IntentKind.START:
        return _start(argument, body)
    # A bare JOIN or LEAVE may name its group in the body.
    return _group_intent(kind, _find(argument or body, groups), argument, exact=True)


def _negated(folded: str, match: re.Match[str]) -> bool:
    """Whether a negation stands just before the match ("we are not interested in joining")."""
    before = folded[: match.start()].split()[-_NEGATION_REACH:]
    return any(word in _NEGATIONS for word in before)


def _asks(pattern: re.Pattern[str], folded: str, kind: IntentKind) -> bool:
    match = pattern.search(folded)
    if match is None:
        return False
    # Only joining and starting are ever declined in so many words; a leave or a status question
    # with "not" in it ("we can no longer take part", "we have not heard back") still asks for it.
    return kind not in {IntentKind.JOIN, IntentKind.START} or not _negated(folded, match)


def _free_text(subject: str, body: str, groups: Sequence[GroupRef]) -> Intent:
    sentences = _sentences(subject) + _sentences(body)
    folded = [(sentence, normalise(sentence)) for sentence in sentences]
    generic = normalise(subject) in _GENERIC_SUBJECTS
    for kind, pattern in _INTENTS:
        sentence = next((s for s, f in folded if _asks(pattern, f, kind)), None)
        if sentence is None:
            continue
        if kind is IntentKind.START:
            topic = _topic(sentence) or ("" if generic or sentence == subject else subject)
            return Intent(kind, topic=topic, aim=_aim(sentences, sentence))
        if kind in {IntentKind.JOIN, IntentKind.LEAVE}:
            found = next(
                (f for f in (_find(t, groups) for t in (sentence, subject, body)) if f.slugs),
                _Found(),
            )
            return _group_intent(kind, found, exact=False)
        return Intent(kind)
    return _without_verb(subject, body, groups, folded, generic=generic)


def _without_verb(
    subject: str, body: str, groups: Sequence[GroupRef], folded: list[tuple[str, str]], *, generic: bool
) -> Intent:
    """No phrase asked for anything: a subject that is a group's name is still a join request."""
    join = dict(_INTENTS)[IntentKind.JOIN]
    if any(join.search(f) for _, f in folded):
        # Joining was mentioned, and declined: "we are not interested in joining" is no request.
        return Intent(IntentKind.UNKNOWN)
    for text in (subject, body if generic else ""):
        found = _find(text, groups)
        if found.slugs and found.leftover <= 1:
            return _group_intent(IntentKind.JOIN, found, exact=False)
    if not normalise(f"{subject} {body}") and "?" in f"{subject}{body}":
        return Intent(IntentKind.HELP)
    return Intent(IntentKind.UNKNOWN)


def classify(subject: str, text: str, groups: Sequence[GroupRef], *, has_token: bool) -> Intent:
    """Read what a message asks for.

    Reply and forward prefixes (Re:, AW:, Fwd:, TR:, SV:, ...) and ``[IG-...]`` tags are removed
    from the subject first. A reply carrying one of our tokens is an approval reply; otherwise
    an exact command in the subject (or, when the subject is empty or generic, in the first line
    of the body) wins; otherwise the free-text tables decide, then a subject that is no more
    than a group's name is read as a join request.

    Args:
        subject: the decoded subject.
        text: the new text of the body (quoted history and signature removed).
        groups: the configured groups.
        has_token: the message carries one of our reply tokens.

    Returns:
        The intent. For an approval reply without a decision, ``aim`` holds the text, in case
        the caller finds that the requester is answering an INFO question.

    """
    body = text.strip()
    if has_token:
        decision = parse_decision(text)
        return Intent(IntentKind.APPROVAL_REPLY, decision=decision, aim="" if decision else body)
    clean = _clean_subject(subject)
    command = _command(clean, body, groups)
    if command is None and normalise(clean) in _GENERIC_SUBJECTS and body:
        first, _, rest = body.partition("\n")
        command = _command(first, rest.strip(), groups)
    return command or _free_text(clean, body, groups)


DIGEST_PREFIX: Final = "digest"
"""The local part's prefix of our digests' Message-IDs (``digest.…@our domain``): a reply names one."""


def is_digest_reply(parsed: ParsedMail, our_domain: str) -> bool:
    """Whether ``parsed`` answers one of our digests: its parent's Message-ID is ``digest.…@our domain``.

    The parent is In-Reply-To, or the last of References when a client wrote no In-Reply-To; older
    messages of the thread do not count, so an answer to the note about a digest is not a digest reply.
    """
    parents = parsed.in_reply_to or parsed.references[-1:]
    prefix, suffix = f"{DIGEST_PREFIX}.", f"@{our_domain.lower()}"
    return any(ref.lower().startswith(prefix) and ref.lower().endswith(suffix) for ref in parents)

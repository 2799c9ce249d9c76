"""Tests for the intent classifier: normalising, group matching, decisions and intents."""

import pytest

from mailflow.core.intent import classify, match_groups, normalise, parse_decision, parse_group_decision
from mailflow.core.model import Decision, GroupDecision, GroupRef, Intent, IntentKind, Verdict

FOOD = ("food", "healthy food", "catering")
GROUPS = (
    GroupRef("food", "Sustainable and Healthy Food Procurement", FOOD),
    GroupRef("ict", "Socially Responsible Public Procurement of ICT", ("ict", "srpp ict", "it")),
    GroupRef("circular", "Circular Public Procurement", ("circular", "circular economy", "cpp")),
    GroupRef("big-buyers", "Big Buyers Initiative", ("big buyers", "bbi"), associated=True),
)
JOIN, LEAVE, START = IntentKind.JOIN, IntentKind.LEAVE, IntentKind.START
HELP, STATUS, UNKNOWN = IntentKind.HELP, IntentKind.STATUS, IntentKind.UNKNOWN
APPROVE, REJECT, INFO = Verdict.APPROVE, Verdict.REJECT, Verdict.INFO
CPP, BBI = "Circular Public Procurement", "the big buyers initiative"
GHENT = "Could the City of Ghent take part in the circular procurement group?"
AIM = "Our aim is to share criteria."
WOULD = "The aim would be to share tenders."
ROOFS = "We want to start a group on green roofs."


def _cases(*rows: tuple[object, ...]) -> list[object]:
    """Turn ``(id, *values)`` rows into parameter sets named by their id."""
    return [pytest.param(*values, id=str(case_id)) for case_id, *values in rows]


@pytest.mark.parametrize(
    ("text", "expected"),
    _cases(
        ("accents-case-punctuation", "Économie  Circulaire!", "economie circulaire"),
        ("casefold-sharp-s", "Straße", "strasse"),
        ("symbols", "Sustainable & Healthy-Food", "sustainable healthy food"),
        ("letters-without-decomposition", "Łódź, Kraków", "lodz krakow"),
        ("blank", " \t\n ", ""),
    ),
)
def test_normalise(text: str, expected: str) -> None:
    """Normalising folds case, strips accents and collapses punctuation and spaces."""
    assert expected == normalise(text)


@pytest.mark.parametrize(
    ("text", "expected"),
    _cases(
        ("alias-in-phrase", "the circular procurement group", ("circular",)),
        ("unconfigured-translation", "Kreislaufwirtschaft", ()),
        ("unconfigured-french-word", "Circulaire", ()),
        ("short-alias-whole-text", "ICT", ("ict",)),
        ("short-alias-whole-text-lowercase", "ict", ("ict",)),
        ("ambiguous-both", "food and circular", ("food", "circular")),
        ("alias-in-name", "Interest Group on Sustainable & Healthy Food", ("food",)),
        ("short-alias-as-ordinary-word", "it would be great", ()),
        ("short-alias-upper-case", "We need advice on IT tenders", ("ict",)),
        ("shouted-text-no-short-match", "IT WOULD BE GREAT TO HEAR FROM YOU", ()),
        ("short-alias-beside-group-word", "the ict group", ("ict",)),
        ("short-alias-lowercase-in-sentence", "bbi would be nice", ()),
        ("full-name", "Circular Public Procurement", ("circular",)),
        ("singular-of-plural", "the big buyer initiative", ("big-buyers",)),
        ("plural-of-alias", "procurement of healthy foods", ("food",)),
        ("distinctive-name-word", "Socially responsible procurement", ("ict",)),
        ("strong-beats-weak", "I am responsible for circular", ("circular",)),
        ("network-words-only", "sustainable public procurement", ()),
        ("slug", "big-buyers", ("big-buyers",)),
        ("whole-words-only", "circularity and foodstuffs", ()),
    ),
)
def test_match_groups(text: str, expected: tuple[str, ...]) -> None:
    """Groups are found by slug, name, alias or distinctive word, short aliases only when clear."""
    assert expected == match_groups(text, GROUPS)


@pytest.mark.parametrize(
    ("text", "expected"),
    _cases(
        ("approve", "Approve", Decision(APPROVE)),
        ("approve-full-stop", "APPROVE.", Decision(APPROVE)),
        ("approve-note", "approve - thanks", Decision(APPROVE, "thanks")),
        ("approved", "Approved", Decision(APPROVE)),
        ("markdown-bold", "**APPROVE**", Decision(APPROVE)),
        ("signature", "\n  \nApprove\n\nBest regards", Decision(APPROVE)),
        ("byte-order-mark", "\ufeffApprove", Decision(APPROVE)),
        (
            "reject-reason",
            "REJECT not a public authority",
            Decision(REJECT, "not a public authority"),
        ),
        ("reject-colon", "Reject: duplicate", Decision(REJECT, "duplicate")),
        ("rejected", "rejected, spam", Decision(REJECT, "spam")),
        ("bold-colon", "**REJECT**: duplicate", Decision(REJECT, "duplicate")),
        ("em-dash", "REJECT \u2014 out of scope", Decision(REJECT, "out of scope")),
        (
            "reason-on-following-lines",
            "REJECT\nnot eligible,\nplease apply first\n\nBest, Anna",
            Decision(REJECT, "not eligible, please apply first"),
        ),
        ("info", "INFO Which department?", Decision(INFO, "Which department?")),
        ("info-colon", "info: which city?", Decision(INFO, "which city?")),
        ("quote-ends-text", "Approve\n> REJECT", Decision(APPROVE)),
        ("keyword-not-first", "I approve of this", None),
        ("no-keyword", "Looks good", None),
        ("quoted-line", "> APPROVE", None),
        ("question", "Approve?", None),
        ("longer-word", "Information follows", None),
        ("wrong-past-tense", "Approveed", None),
        ("empty", "", None),
    ),
)
def test_parse_decision(text: str, expected: Decision | None) -> None:
    """The first non-empty line decides; the reason runs on until a blank or quoted line."""
    assert expected == parse_decision(text)


@pytest.mark.parametrize(
    ("subject", "text", "decision", "aim"),
    _cases(
        ("approve", "Re: [IG-abcd] JOIN circular", "Approve", Decision(APPROVE), ""),
        ("reject", "Re: [IG-abcd] JOIN ict", "**REJECT**: dup", Decision(REJECT, "dup"), ""),
        (
            "no-decision",
            "Re: [IG-ab] JOIN circular",
            "I approve of this",
            None,
            "I approve of this",
        ),
        (
            "info-answer",
            "RE: AW: [IG-x1] Request",
            " The city council. \n",
            None,
            "The city council.",
        ),
        ("command-text", "Re: [IG-abcd] JOIN circular", "JOIN ict", None, "JOIN ict"),
    ),
)
def test_classify_with_token(subject: str, text: str, decision: Decision | None, aim: str) -> None:
    """A message carrying a reply token is an approval reply, whatever its subject says."""
    expected = Intent(IntentKind.APPROVAL_REPLY, decision=decision, aim=aim)
    assert expected == classify(subject, text, GROUPS, has_token=True)


@pytest.mark.parametrize(
    ("subject", "text", "kind", "slug", "group_text"),
    _cases(
        ("tag-no-token", "Re: [IG-abcd] JOIN circular", "", JOIN, "circular", "circular"),
        ("full-name", "JOIN Circular Public Procurement", "", JOIN, "circular", CPP),
        ("upper", "join CIRCULAR", "", JOIN, "circular", "CIRCULAR"),
        ("colon", "Join: circular", "", JOIN, "circular", "circular"),
        ("short-alias", "JOIN ICT", "", JOIN, "ict", "ICT"),
        ("accented", "Jóin ict group", "", JOIN, "ict", "ict group"),
        ("no-break-space", "JOIN\u00a0circular", "", JOIN, "circular", "circular"),
        ("leave", "LEAVE ict", "", LEAVE, "ict", "ict"),
        ("many-prefixes", "SV: Re[2]: TR: LEAVE circular", "", LEAVE, "circular", "circular"),
        ("italian-prefixes", "I: R: join ict", "", JOIN, "ict", "ict"),
        ("tag-first", "[IG-abc] Re: JOIN ict", "", JOIN, "ict", "ict"),
        ("unknown-group", "JOIN Kreislaufwirtschaft", "", JOIN, None, "Kreislaufwirtschaft"),
        ("group-in-body", "JOIN", "Circular Public Procurement please", JOIN, "circular", CPP),
        ("associated", "JOIN the big buyers initiative", "", JOIN, "big-buyers", BBI),
        ("body-command", "", "JOIN circular\nBest, Anna", JOIN, "circular", "circular"),
        ("body-command-bold", "Hello", "**JOIN** circular", JOIN, "circular", "circular"),
        ("help", "HELP", "", HELP, None, ""),
        ("help-forwarded", "Fwd: FW: help?", "", HELP, None, ""),
        ("subject-command-wins", "HELP", "We would like to join circular.", HELP, None, ""),
        ("status", "status", "", STATUS, None, ""),
    ),
)
def test_classify_exact_commands(
    subject: str, text: str, kind: IntentKind, slug: str | None, group_text: str
) -> None:
    """Exact commands in the subject, or in the body under a generic subject, always win."""
    expected = Intent(kind, group_slug=slug, group_text=group_text, exact=True)
    assert expected == classify(subject, text, GROUPS, has_token=False)


@pytest.mark.parametrize(
    ("subject", "text", "topic", "aim"),
    _cases(
        (
            "with-aim",
            "START Green cleaning",
            "Our aim is to share criteria.",
            "Green cleaning",
            AIM,
        ),
        ("without-aim", "START Green cleaning", "Thanks", "Green cleaning", ""),
        ("in-body", "Request", "START Green cleaning\n" + AIM, "Green cleaning", AIM),
        (
            "topic-from-body",
            "START",
            "We want to start a group on green roofs.",
            "green roofs",
            ROOFS,
        ),
    ),
)
def test_classify_exact_start(subject: str, text: str, topic: str, aim: str) -> None:
    """START takes its topic from the subject and its aim from a body of more than a few words."""
    expected = Intent(START, topic=topic, aim=aim, exact=True)
    assert expected == classify(subject, text, GROUPS, has_token=False)


@pytest.mark.parametrize(
    ("subject", "text", "exact", "group_text"),
    _cases(
        ("command", "JOIN food and circular", "", True, "food and circular"),
        ("free-text", "", "We want to join the food and circular groups.", False, "food, circular"),
    ),
)
def test_classify_ambiguous_group(subject: str, text: str, exact: bool, group_text: str) -> None:
    """A request naming several groups lists them as candidates and names none."""
    expected = Intent(JOIN, candidates=("food", "circular"), group_text=group_text, exact=exact)
    assert expected == classify(subject, text, GROUPS, has_token=False)


@pytest.mark.parametrize(
    ("subject", "text", "kind", "slug", "group_text"),
    _cases(
        ("en-take-part", "Question", GHENT, JOIN, "circular", "circular"),
        ("en-join-no-group", "", "We would like to join.", JOIN, None, ""),
        ("en-request-to-join", "Request to join", "", JOIN, None, ""),
        (
            "en-member",
            "",
            "Can we become a member of the big buyers initiative?",
            JOIN,
            "big-buyers",
            "big buyers initiative",
        ),
        ("en-sign-up", "", "Please sign us up for the ICT group", JOIN, "ict", "ICT"),
        ("en-interested", "Hi", "Turin is interested in the CPP group.", JOIN, "circular", "CPP"),
        ("en-group-in-subject", CPP, "We would like to participate.", JOIN, "circular", CPP),
        ("en-it-is-a-word", "", "We would like to join. It would be great.", JOIN, None, ""),
        (
            "de-beitreten",
            "",
            "Wir möchten der Gruppe Circular beitreten.",
            JOIN,
            "circular",
            "Circular",
        ),
        ("de-teilnehmen", "", "Wien möchte an der ICT-Gruppe teilnehmen.", JOIN, "ict", "ICT"),
        (
            "de-unknown-group",
            "",
            "Wir möchten der Gruppe Kreislaufwirtschaft beitreten.",
            JOIN,
            None,
            "",
        ),
        ("fr-rejoindre", "", "Nous souhaitons rejoindre le groupe CPP.", JOIN, "circular", "CPP"),
        ("fr-participer", "", "Nous souhaitons participer au groupe ICT.", JOIN, "ict", "ICT"),
        (
            "fr-adherer",
            "",
            "Lyon souhaite adhérer au groupe Big Buyers.",
            JOIN,
            "big-buyers",
            "Big Buyers",
        ),
        (
            "es-unirnos",
            "",
            "Quisiéramos unirnos al grupo de compra circular.",
            JOIN,
            "circular",
            "circular",
        ),
        ("es-participar", "", "Queremos participar en el grupo BBI.", JOIN, "big-buyers", "BBI"),
        (
            "it-aderire",
            "",
            "Vorremmo aderire al gruppo Healthy Food.",
            JOIN,
            "food",
            "Healthy Food",
        ),
        ("it-unknown-group", "", "Vorremmo partecipare al gruppo sul cibo sano.", JOIN, None, ""),
        (
            "nl-deelnemen",
            "",
            "Wij willen graag deelnemen aan de BBI groep.",
            JOIN,
            "big-buyers",
            "BBI",
        ),
        ("bare-group", "Circular economy", "", JOIN, "circular", "Circular economy"),
        ("bare-group-words", "circular procurement", "", JOIN, "circular", "circular"),
        ("bare-group-in-body", "", "ICT group please", JOIN, "ict", "ICT"),
        ("en-remove", "Please remove us from the ICT group.", "", LEAVE, "ict", "ICT"),
        ("en-unsubscribe", "Unsubscribe", "", LEAVE, None, ""),
        ("en-leave", "", "We would like to leave the food group.", LEAVE, "food", "food"),
        ("en-no-longer", "", "We no longer participate in the food group.", LEAVE, "food", "food"),
        ("de-austreten", "", "Wir möchten aus der Gruppe ICT austreten.", LEAVE, "ict", "ICT"),
        ("fr-quitter", "", "Nous voulons quitter le groupe CPP.", LEAVE, "circular", "CPP"),
        (
            "fr-ne-plus",
            "",
            "Nous ne souhaitons plus participer au groupe ICT.",
            LEAVE,
            "ict",
            "ICT",
        ),
        ("es-abandonar", "", "Queremos abandonar el grupo ICT.", LEAVE, "ict", "ICT"),
        (
            "it-lasciare",
            "",
            "Vogliamo lasciare il gruppo Healthy Food.",
            LEAVE,
            "food",
            "Healthy Food",
        ),
        (
            "nl-uitschrijven",
            "",
            "Graag uitschrijven voor de BBI groep.",
            LEAVE,
            "big-buyers",
            "BBI",
        ),
        ("en-help", "", "How does this work?", HELP, None, ""),
        ("de-help", "", "Wie funktioniert das?", HELP, None, ""),
        ("en-help-us", "Question", "Can you help us?", HELP, None, ""),
        ("question-mark-alone", "", " ? ", HELP, None, ""),
        ("status-beats-join", "", "What is the status of our request to join?", STATUS, None, ""),
        ("en-any-news", "", "Any news on our application?", STATUS, None, ""),
        ("fr-status", "", "Où en est notre demande ?", STATUS, None, ""),
        ("spam", "Buy cheap watches", "Best prices!", UNKNOWN, None, ""),
        ("invitation", "Join us for our webinar on circular economy", "", UNKNOWN, None, ""),
        ("newsletter", "Invitation: circular webinar", "Register now.", UNKNOWN, None, ""),
        ("keep-in-loop", "", "Please leave us in the loop.", UNKNOWN, None, ""),
        ("out-of-office", "Out of office", "I am on leave until Monday.", UNKNOWN, None, ""),
        ("group-but-no-request", CPP + " meeting minutes", "", UNKNOWN, None, ""),
        ("unconfigured-name", "Circulaire", "", UNKNOWN, None, ""),
        ("empty-body", "Hello", "", UNKNOWN, None, ""),
    ),
)
def test_classify_free_text(
    subject: str, text: str, kind: IntentKind, slug: str | None, group_text: str
) -> None:
    """Free-text join, leave, help and status requests are read in several languages."""
    expected = Intent(kind, group_slug=slug, group_text=group_text)
    assert expected == classify(subject, text, GROUPS, has_token=False)


@pytest.mark.parametrize(
    ("text", "topic", "aim"),
    _cases(
        ("en-start", "We want to start a group on green cleaning. " + AIM, "green cleaning", AIM),
        (
            "en-propose",
            "We propose a new interest group about mobility.\n" + WOULD,
            "mobility",
            WOULD,
        ),
        (
            "en-set-up",
            "Could we set up a working group for zero-emission sites?",
            "zero-emission sites",
            "",
        ),
        ("de-grunden", "Wir möchten eine neue Gruppe zu grünem Bauen gründen.", "grünem Bauen", ""),
        (
            "de-aim",
            "Wir möchten eine neue Gruppe zu Bauen gründen. Unser Ziel: Austausch.",
            "Bauen",
            "Unser Ziel: Austausch.",
        ),
        (
            "fr-creer",
            "Nous voulons créer un nouveau groupe sur l'alimentation.",
            "l'alimentation",
            "",
        ),
        (
            "es-crear",
            "Queremos crear un nuevo grupo sobre movilidad. Nuestro objetivo: compartir.",
            "movilidad",
            "Nuestro objetivo: compartir.",
        ),
        ("it-creare", "Vorremmo creare un nuovo gruppo su appalti verdi.", "appalti verdi", ""),
        (
            "nl-nieuwe-groep",
            "We willen een nieuwe groep over circulaire textiel.",
            "circulaire textiel",
            "",
        ),
    ),
)
def test_classify_free_text_start(text: str, topic: str, aim: str) -> None:
    """Free-text start requests carry the topic after on/about/zu/sur/sobre/su and any aim."""
    assert Intent(START, topic=topic, aim=aim) == classify("", text, GROUPS, has_token=False)


def test_classify_start_topic_from_subject() -> None:
    """A start request without a topic in its text takes the (non-generic) subject as topic."""
    actual = classify("Green cleaning", "Could we set up a new group?", GROUPS, has_token=False)
    assert Intent(START, topic="Green cleaning") == actual


@pytest.mark.parametrize(
    ("subject", "text", "expected"),
    [
        (
            "Circular group",
            "We are not interested in joining the circular group at the moment.",
            IntentKind.UNKNOWN,
        ),
        ("Re: invitation", "We don't want to take part in the circular group.", IntentKind.UNKNOWN),
        ("Circular", "Wir möchten nicht teilnehmen.", IntentKind.UNKNOWN),
        ("Groupe circulaire", "Nous ne souhaitons pas participer au groupe circular.", IntentKind.UNKNOWN),
        ("Circular", "We would like to join the circular group; it is not urgent.", IntentKind.JOIN),
        ("Hello", "No problem, we would like to join the circular group.", IntentKind.JOIN),
        ("Circular", "We can no longer take part in the circular group.", IntentKind.LEAVE),
    ],
    ids=["en-not", "en-dont", "de-nicht", "fr-ne-pas", "not-after", "no-far-before", "leave-kept"],
)
def test_declined_join_is_not_a_request(subject: str, text: str, expected: IntentKind) -> None:
    """A negation just before the verb declines: "not interested in joining" makes no join request."""
    assert expected == classify(subject, text, GROUPS, has_token=False).kind


MEETING, UPDATE, DIGEST = IntentKind.MEETING, IntentKind.UPDATE, IntentKind.DIGEST


@pytest.mark.parametrize(
    ("subject", "text", "kind", "topic", "group"),
    _cases(
        ("meeting-schedule", "MEETING circular", "When: 12 March", MEETING, "schedule", "circular"),
        ("meeting-name", "Meeting: Circular Public Procurement", "", MEETING, "schedule", "circular"),
        ("schedule-word", "SCHEDULE food", "", MEETING, "schedule", "food"),
        ("meeting-no-group", "Schedule a meeting please", "", MEETING, "schedule", None),
        ("meeting-update", "MEETING UPDATE 12", "When: …", MEETING, "update 12", None),
        ("meeting-cancel-hash", "meeting cancel #3", "", MEETING, "cancel 3", None),
        ("cancel-meeting", "Cancel meeting 4", "", MEETING, "cancel 4", None),
        ("reschedule", "RESCHEDULE 7", "", MEETING, "update 7", None),
        ("reply-prefix", "Re: MEETING circular", "", MEETING, "schedule", "circular"),
        ("update-group", "UPDATE circular", "We met and agreed", UPDATE, "", "circular"),
        ("update-group-in-body", "Update", "Circular group: we met", UPDATE, "", "circular"),
        ("digest-off", "DIGEST off", "", DIGEST, "off", None),
        ("digest-stop", "digest stop", "", DIGEST, "off", None),
        ("digest-monthly", "Digest monthly", "", DIGEST, "monthly", None),
        ("digest-weekly", "DIGEST weekly", "", DIGEST, "weekly", None),
        ("digest-unclear", "DIGEST sometimes", "", DIGEST, "", None),
    ),
)
def test_classify_service_commands(
    subject: str, text: str, kind: IntentKind, topic: str, group: str | None
) -> None:
    """Meeting, update and digest commands in the subject are exact commands with their argument."""
    intent = classify(subject, text, GROUPS, has_token=False)
    assert (kind, topic, group, True) == (intent.kind, intent.topic, intent.group_slug, intent.exact)


@pytest.mark.parametrize(
    ("subject", "text"),
    _cases(
        ("cancel-membership", "Cancel our membership", "We leave the circular group"),
        ("meeting-number-only", "MEETING 12", ""),
        ("update-without-group", "update on our request", "any news?"),
        ("update-number", "Update 12", ""),
    ),
)
def test_words_that_are_not_service_commands(subject: str, text: str) -> None:
    """Ordinary subjects that start with the command words are not read as those commands."""
    intent = classify(subject, text, GROUPS, has_token=False)
    assert intent.kind not in {MEETING, UPDATE, DIGEST}


@pytest.mark.parametrize(
    ("text", "extend", "months"),
    _cases(
        ("extend-months", "EXTEND 12", True, 12),
        ("extend-by", "extend by 6 months", True, 6),
        ("extend-year", "Extend: 1 year", True, 12),
        ("extend-bare", "EXTEND", True, 12),
        ("extended-for", "Extended for 18 months\nThanks", True, 18),
        ("extend-bold", "**EXTEND** 6", True, 6),
        ("close", "CLOSE", False, 0),
        ("closed", "Closed.", False, 0),
        ("close-sentence", "close the group please", False, 0),
    ),
)
def test_parse_group_decision(text: str, extend: bool, months: int) -> None:
    """EXTEND [n months|years] or CLOSE on the first line answers a group's end-of-period question."""
    assert GroupDecision(extend, months) == parse_group_decision(text)


@pytest.mark.parametrize(
    "text",
    _cases(("quoted", "> EXTEND 6"), ("too-long", "extend 200"), ("other", "Hello"), ("blank", "  \n")),
)
def test_no_group_decision(text: str) -> None:
    """Quoted lines, extensions beyond five years and other text decide nothing."""
    assert parse_group_decision(text) is None


@pytest.mark.parametrize(
    ("subject", "kind", "topic"),
    _cases(
        ("start-of", "Start of our participation", None, ""),
        ("start-date", "Start date for the project", None, ""),
        ("start-a-group-on", "Start a group on green roofs", START, "green roofs"),
        ("start-new-group-on", "START new interest group on textiles", START, "textiles"),
        ("start-topic", "START green roofs", START, "green roofs"),
    ),
)
def test_start_as_a_word_and_as_a_command(subject: str, kind: IntentKind | None, topic: str) -> None:
    """Subjects "Start of …" and "Start date …" are no START commands; "START a group on X" proposes X."""
    intent = classify(subject, "Hello, we have a question.", GROUPS, has_token=False)
    if kind is None:
        assert (intent.kind, intent.exact) != (START, True)
    else:
        assert (kind, topic, True) == (intent.kind, intent.topic, intent.exact)

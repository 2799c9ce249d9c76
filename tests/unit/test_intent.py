"""Tests for the intent classifier: normalising, group matching, decisions and intents."""

import pytest

from mailflow.core.intent import classify, match_groups, normalise, parse_decision
from mailflow.core.model import Decision, GroupRef, Intent, IntentKind, Verdict

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


def _cases(*rows):
    """Turn ``(id, *values)`` rows into parameter sets named by their id."""
    return [pytest.param(*values, id=case_id) for case_id, *values in rows]


def _group(kind, slug=None, text="", candidates=(), *, exact=False):
    """Build the intent expected for a join or leave request."""
    return Intent(kind, group_slug=slug, candidates=candidates, group_text=text, exact=exact)


def _exact(kind, slug=None, text="", candidates=()):
    """Build the intent expected for an exact join or leave command."""
    return _group(kind, slug, text, candidates, exact=True)


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
def test_normalise(text, expected):
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
def test_match_groups(text, expected):
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
        ("reject-reason", "REJECT not a public authority", Decision(REJECT, "not a public authority")),
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
def test_parse_decision(text, expected):
    """The first non-empty line decides; the reason runs on until a blank or quoted line."""
    assert expected == parse_decision(text)


@pytest.mark.parametrize(
    ("subject", "text", "expected"),
    _cases(
        ("approve", "Re: [IG-abcd] JOIN circular", "Approve", Intent(IntentKind.APPROVAL_REPLY)),
    )[:0]
    + _cases(
        ("approve", "Re: [IG-abcd] JOIN circular", "Approve", Decision(APPROVE), ""),
        ("reject", "Re: [IG-abcd] JOIN ict", "**REJECT**: duplicate", Decision(REJECT, "duplicate"), ""),
        ("no-decision", "Re: [IG-abcd] JOIN circular", "I approve of this", None, "I approve of this"),
        ("info-answer", "RE: AW: [IG-x1] Request", " The city council. \n", None, "The city council."),
        ("command-text", "Re: [IG-abcd] JOIN circular", "JOIN ict", None, "JOIN ict"),
    ),
)
def test_classify_with_token(subject, text, expected):
    """A message carrying a reply token is an approval reply, whatever its subject says."""

"""Care: the risk screen over a person's own words, crisis resources and aftercare.

The screen is deliberately crude and deliberately eager. Keyword rules cannot understand a
person; they can only notice words that often travel with self-harm and suicide. When they
notice, the product stops deepening and shows a calm card with people to talk to. A false
alarm costs a gentle card; a miss could cost far more, so the rules lean towards firing.

Nothing here logs, stores or returns the person's words: a verdict carries rule names only.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import unicodedata
from dataclasses import dataclass

from cachetools import LRUCache

__all__ = [
    "AFTERCARE_STEPS",
    "CRISIS_RESOURCES",
    "NOT_THERAPY_NOTE",
    "CareVerdict",
    "care_document",
    "normalise_for_screen",
    "screen_memory",
    "screen_note",
    "screen_request",
    "screen_texts",
]


@dataclass(frozen=True)
class CareVerdict:
    """Whether a person's words speak of self-harm or suicide, and which rules noticed."""

    crisis: bool
    reasons: tuple[str, ...]  # names of the rules that fired (never the person's text)


# --------------------------------------------------------------------------------------------
# Normalisation: fold case, accents, apostrophes, look-alike digits, contractions, texting
# shorthand and stretched letters, so that one rule covers many spellings.
# --------------------------------------------------------------------------------------------

_APOSTROPHES = str.maketrans({c: "'" for c in "\u2018\u2019\u201b\u02bc\u00b4`\u2032"})
_LEET = str.maketrans({"0": "o", "1": "i", "3": "e", "4": "a", "@": "a", "$": "s", "!": "i"})
_LEET_INSIDE_WORD = re.compile(r"(?<=[a-z])[0134@$!]+(?=[a-z])")
_CLAUSE_BREAKS = re.compile(r"[.!?;:,\u2026\n\r\t()\[\]\"]+")
_NOT_WORD = re.compile(r"[^a-z0-9' .]+")
_REPEATS = re.compile(r"([a-z])\1+")

_APOSTROPHE_FORMS = [
    (re.compile(r"\bcan'?t\b"), "cannot"),
    (re.compile(r"\bwon't\b"), "will not"),
    (re.compile(r"\bain't\b"), "am not"),
    (re.compile(r"n't\b"), " not"),
    (re.compile(r"\bi'm\b"), "i am"),
    (re.compile(r"'ve\b"), " have"),
    (re.compile(r"'re\b"), " are"),
    (re.compile(r"'ll\b"), " will"),
    (re.compile(r"\bi'd\b"), "i would"),
    (re.compile(r"\b(it|what|that|there|life|nothing|everything|here|who|he|she)'s\b"), r"\1 is"),
]

# Token shorthand, keyed by the squeezed spelling (stretched letters already collapsed).
_SHORTHAND = {
    "dont": "do not",
    "didnt": "did not",
    "doesnt": "does not",
    "isnt": "is not",
    "wasnt": "was not",
    "werent": "were not",
    "arent": "are not",
    "wouldnt": "would not",
    "couldnt": "could not",
    "shouldnt": "should not",
    "havent": "have not",
    "hasnt": "has not",
    "aint": "am not",
    "cant": "canot",
    "wont": "wil not",
    "im": "i am",
    "ive": "i have",
    "wana": "want to",
    "wanna": "want to",
    "gona": "going to",
    "gota": "got to",
    "u": "you",
    "2": "to",
    "wnat": "want",
    "wnt": "want",
    "watn": "want",
    "ur": "your",
    "kms": "kil myself",
    "myslef": "myself",
    "mysef": "myself",
    "meself": "myself",
    "myselfe": "myself",
    "sewerslide": "suicide",
    "sucide": "suicide",
    "ded": "dead",
    "noone": "no one",
    "nobody": "no one",
    "thats": "that is",
    "whats": "what is",
    "theres": "there is",
    "lifes": "life is",
}
_PHRASES = [
    (re.compile(r"\bunalive (myself|me)\b"), "kil myself"),
    (re.compile(r"\bunalive\b"), "dead"),
    (re.compile(r"\bmy self\b"), "myself"),
    (re.compile(r"\bany more\b"), "anymore"),
    (re.compile(r"\bany longer\b"), "anymore"),
    (re.compile(r"\bno more\b"), "anymore"),
    (re.compile(r"\bcan not\b"), "canot"),
    (re.compile(r"\bno body\b"), "no one"),
    (re.compile(r"\bself ?(harm|injur|mutilat)"), r"selfharm \1"),
]


def squeeze(text: str) -> str:
    """Collapse every run of one repeated letter ("killl", "kill", "kil" all read "kil")."""
    return _REPEATS.sub(r"\1", text)


def normalise_for_screen(text: str) -> str:
    """Fold a person's text into the canonical spelling the rules are written against.

    Clause breaks (commas, full stops...) become a lone ``.`` token so that negation
    never reaches across them.

    >>> normalise_for_screen("I'm NOT ok… I wanna diiie")
    'i am not ok . i want to die'
    """
    text = unicodedata.normalize("NFKD", text)
    text = "".join(c for c in text if not unicodedata.combining(c)).lower()
    text = text.translate(_APOSTROPHES)
    text = _LEET_INSIDE_WORD.sub(lambda m: m.group(0).translate(_LEET), text)
    for pattern, replacement in _APOSTROPHE_FORMS:
        text = pattern.sub(replacement, text)
    text = _CLAUSE_BREAKS.sub(" . ", text)
    text = _NOT_WORD.sub(" ", text).replace("'", "")
    text = squeeze(text)
    tokens = []
    for token in text.split():
        tokens.append(_SHORTHAND.get(token, token))
    text = " ".join(tokens)
    for pattern, replacement in _PHRASES:
        text = pattern.sub(replacement, text)
    text = re.sub(r"(\s*\.\s*)+", " . ", text)
    return " ".join(text.split()).strip(" .")


def _squeeze_pattern(pattern: str) -> str:
    """Collapse doubled letters in a regex's literal text, leaving escapes like ``\\b`` alone."""
    out: list[str] = []
    i = 0
    last_letter = None
    while i < len(pattern):
        char = pattern[i]
        if char == "\\" and i + 1 < len(pattern):
            out.append(pattern[i : i + 2])
            i += 2
            last_letter = None
            continue
        if char.isalpha() and char == last_letter:
            i += 1
            continue
        out.append(char)
        last_letter = char if char.isalpha() else None
        i += 1
    return "".join(out)


# --------------------------------------------------------------------------------------------
# Rules. Written in ordinary spelling against the normalised text ("do not", "cannot",
# "i am", "want to"); doubled letters are squeezed out of the patterns automatically.
# --------------------------------------------------------------------------------------------

_MYSELF = r"(myself|meself|me ?self)"
_ANYMORE = r"(anymore|again|ever again|at all|now|today|tonight)"
_SUICIDE = r"s[ou]?[iy]?[cs]+[iy]?[dt]"  # suicide, sucide, suiside, suicdal, ...
_WANT = (
    r"(want|wanted|wanting|wish|wishing|wished|need|needing|ready|going|planning|plan|"
    r"deserve|rather|would like|long|longing|praying|pray|hope|hoping|trying|try|about)"
)
_BE_GONE = (
    r"(die|be dead|dead|not (be )?(here|alive|around)|not exist|stop existing|"
    r"never wake up|not wake up|cease to exist|sleep forever|be gone forever|"
    r"disappear(?! (into|under|in|to|for a|for the|from (work|school|social))|ing (into|under))|"
    r"vanish(?! (into|under|for a))|go away forever|end it|end it all|end my life|"
    r"be gone(?! (for|by|before|when|from|on|at|in|til|until))|not be alive)"
)
_PERSON_WHO_MIGHT_NOTICE = (
    r"(no one|everyone|everybody|anyone|anybody|they|people|my family|none of them)"
)


@dataclass(frozen=True)
class _Rule:
    name: str
    pattern: re.Pattern[str]
    negatable: bool = True  # a "not"/"never" just before the words quiets the rule
    first_person: bool = False  # quiet when the clause is plainly about someone else


def _rule(name: str, pattern: str, *, negatable: bool = True, first_person: bool = False) -> _Rule:
    return _Rule(name, re.compile(_squeeze_pattern(pattern)), negatable, first_person)


_RULES: tuple[_Rule, ...] = (
    # Direct words about ending one's own life.
    _rule(
        "kill_myself",
        rf"\b(kill|kiling|kils|killed|end|ending|ofing|hang|hanging|shoot|shooting|drown|"
        rf"drowning|poison|poisoning|gas|suffocate|smother) {_MYSELF}\b",
    ),
    # "off myself": "off" squeezes to "of", so it needs a verb-like word before it.
    _rule("off_myself", rf"\b(to|just|gona|wil|should|might|could) (just )?off {_MYSELF}\b"),
    _rule("end_my_life", r"\b(end|ending|ended|take|taking|took) (my|my own) (own )?life\b"),
    _rule(
        "end_it_all",
        r"\b(end|ending|finish|finishing) (it all|everything|it for good|things for good|"
        r"it tonight|it today|it soon|it now)\b",
    ),
    _rule(
        "thinking_of_ending_it",
        r"\b(think|thinking|thought|thoughts|considering|consider|planning|plan) (about|of|on)? ?"
        r"(ending it|ending my life|ending everything|ending myself|not being here|dying|death "
        r"a lot|being dead)\b",
        first_person=True,
    ),
    _rule("suicidal", rf"\b{_SUICIDE}[aei]?l\b|\b{_SUICIDE}(al|el|le|ial)\w*", first_person=True),
    _rule(
        "suicide_first_person",
        rf"\b(i|me|to|am|been|keep|kept|was|have|would|could|might|will|should|about|of)"
        rf" (\w+ ){{0,2}}(commit|commiting|comitting|attempt|attempted|attempting|consider|"
        rf"considering|considered|contemplate|contemplating|contemplated|think|thinking|thought|"
        rf"planning|plan|planned|research|researching|googled|googling)\w* "
        rf"(about |of |on )?(my |a )?{_SUICIDE}\w*",
    ),
    _rule(
        "suicide_plan_or_note",
        rf"\b(my|a) {_SUICIDE}\w* (note|plan|letter|attempt|thoughts|ideation|urges|"
        rf"hotline|line|method)",
    ),
    _rule(
        "suicide_thoughts",
        rf"\b(thoughts|thinking|ideation|urges|feelings) (of|about) {_SUICIDE}\w*",
    ),
    # Wanting to die or not to exist.
    _rule(
        "want_to_die",
        rf"\b{_WANT} (to )?(just |simply |finally |quietly )?{_BE_GONE}",
        first_person=True,
    ),
    _rule(
        "wish_i_was_dead",
        r"\b(wish|wished|wishing|hope|hoping|pray|praying) (that )?i (was|were|had|could|would|"
        r"will|just|never|did not|do not|could just|would just) ?(just )?(be )?(dead|die|died|"
        r"never been born|not been born|never born|not born|gone|not here|not alive|disappear|"
        r"vanish|not exist|never existed|not wake up|never wake up|never woke up|not wake|"
        r"wake up dead|get hit|was never born)",
    ),
    _rule(
        "do_not_want_to_live",
        r"\b(do not|not|never|no longer|did not|does not|dont) (want|wanting|wish|wishing|feel "
        r"like|care) (to )?(live|living|exist|existing|be alive|being alive|wake up|waking up|"
        r"go on|going on|keep going|keep living|carry on|be around|be here (anymore|now|at all)|"
        r"be on this earth|be in this world|see tomorrow|be a person)\b",
        negatable=False,
    ),
    _rule(
        "do_not_want_to_be_here",
        r"\b(do not|dont) want to be here\s*($|\.)",
        negatable=False,
    ),
    _rule(
        "hope_not_to_wake",
        r"\b(hope|wish|pray|praying|hoping|wishing) (that )?i (do not|did not|will not|would not|"
        r"never|dont) (wake up|make it through|survive)",
        negatable=False,
    ),
    _rule(
        "easier_if_i_did_not_wake",
        r"\b(easier|better|best|fine|ok|okay|happier|simpler) (for everyone |for them )?if i "
        r"(just )?(did not|do not|never|would not|were to not|could not) (wake up|exist|come "
        r"back|make it|get up)",
        negatable=False,
    ),
    _rule(
        "unsure_about_living",
        r"\b(not sure|do not know|unsure|no idea) (if |whether |that )?i (still )?(want|wana|"
        r"can|could) (to )?(live|be alive|be here|go on|keep going|keep living|carry on|exist)",
        negatable=False,
    ),
    _rule(
        "feel_like_dying",
        r"\bfeel(ing)? like (dying|death|i (should|want to|could|will) die|ending it|"
        r"ending my life|ending everything|not being here|not existing|disappearing forever)",
        first_person=True,
    ),
    _rule(
        "should_die",
        r"\b(should|deserve to|ought to|better) (just )?(die|be dead|kil myself)",
        first_person=True,
    ),
    _rule(
        "never_wake_up",
        r"\b(sleep|fall asleep|go to sleep|close my eyes) (and |then )?(never|not) (wake|open)"
        r"|\b(sleep|rest) forever\b|\bnever (want to )?wake up\b|\beternal sleep\b",
    ),
    _rule(
        "die_in_my_sleep",
        r"\b(hope|wish|pray|praying|hoping|wishing) (that )?i (\w+ ){0,2}(die|pass|go) in my sleep",
    ),
    _rule(
        "something_kill_me",
        r"\b(hope|wish|want|need|praying|hoping|wishing) (that )?(someone|somebody|something|"
        r"a car|a bus|a truck|a train|god|you|it|the cancer|this) (would |will |could )?"
        r"(just )?(kill|kils|run me over|runs me over|hit me|hits me|end me|take me|takes me)",
    ),
    _rule("please_kill_me", r"\b(please|pls|plz|just) (just )?kill me\b|\bkill me (now|please)\b"),
    # Worthlessness towards others: better off without me, a burden.
    _rule(
        "better_off_without_me",
        r"\bbetter (off|of)? ?(dead|without me|if i (was|were|am|had|did|died|disappeared|left|"
        r"never|was not|were not|was never|were never|wasnt|werent|was gone|were gone|"
        r"was dead|were dead|killed|did not exist)|when i am gone|after i am gone|"
        r"if i am gone|with me gone|with me dead)",
        negatable=False,
    ),
    _rule(
        "happier_without_me",
        r"\b(happier|easier|better|lighter|fine|ok|okay|relieved) (off )?(without me|if i (was|"
        r"were) (gone|dead|not here|not around)|if i (died|disappeared|left for good)|"
        r"once i am gone|when i am gone)",
        negatable=False,
    ),
    _rule(
        "no_one_would_miss_me",
        rf"\b{_PERSON_WHO_MIGHT_NOTICE} (\w+ ){{0,2}}(would|will|wil|even)? ?(not )?(even )?"
        rf"(miss me|notice (if|when|that) i|care (if|when|that) i|notice i am gone|"
        rf"notice i was gone)",
        negatable=False,
    ),
    _rule(
        "burden",
        r"\b(i am|i feel like|feel like|i feel|i am just|i am such|i have become|i became|being)"
        r" (such |just |only |nothing but |a huge |a big )*(a )?(burden|waste of space|"
        r"waste of air|waste of oxygen)",
    ),
    _rule("burden_to_others", r"\bburden (to|on|for) (everyone|everybody|my family|them|all)"),
    _rule(
        "world_without_me",
        r"\b(world|everyone|everybody|everything|my family|my kids|they) (would be|will be|is) "
        r"(better|happier|fine|ok|okay) (off |of )?without me",
        negatable=False,
    ),
    _rule(
        "if_i_died",
        r"\bif i (died|was dead|were dead|was gone|were gone|disappeared|killed myself|"
        r"was not here|were not here|did not wake up|never woke up|vanished) "
        r"(tomorrow|today|tonight|now|would|no one|nobody|who|anyone|everyone|at all|would anyone)",
        negatable=False,
    ),
    _rule("when_i_am_gone", r"\b(when|after|once) i am (gone|dead)\b(?! (for|to|on|from|away))"),
    # No point, no reason, no way out.
    _rule(
        "no_point_living",
        r"\b(what is|wats|what) the point (of|in) (living|life|being alive|going on|it all|"
        r"existing|carrying on|anything|me|trying anymore|being here|staying alive|waking up)",
        negatable=False,
    ),
    _rule(
        "do_not_deserve_to_live",
        r"\b(do not|does not|dont|never) deserve to (live|be alive|be here|exist|be happy "
        r"anymore)",
        negatable=False,
    ),
    _rule(
        "what_is_the_point",
        r"\bwhat is the point( of it| of anything| of me| in me| of it all| in trying| in "
        r"anything)? ?(anymore|at all|now)?\s*($|\.)",
        negatable=False,
    ),
    _rule(
        "see_no_point",
        r"\b(see|seeing|find|finding|feel) (no|the|any) (point|reason|purpose) (in|of|to|for) "
        r"(living|life|live|being alive|going on|go on|carrying on|existing|being here|trying|"
        r"waking up|staying alive)",
        negatable=False,
    ),
    _rule(
        "no_reason_to_live",
        r"\b(no|not any|not a|not one|not much|without a|without any|lost my|lost all) "
        r"(point|reason|purpose|will) (in |to |of |for |for me to )?(living|life|live|be alive|"
        r"being alive|go on|going on|carry on|keep going|exist|existing|be here|stay|staying|"
        r"wake up|get up anymore|try anymore)",
        negatable=False,
    ),
    _rule(
        "nothing_to_live_for",
        r"\bnothing (left )?(to|worth) (live|living|stay|staying) for\b"
        r"|\bnothing left for me\b",
        negatable=False,
    ),
    _rule(
        "life_not_worth_living",
        r"\b(life|living|my life|it|this) (is not|is no longer|no longer|not|is never|was not|"
        r"is not even|isnt) (worth )?(living|it anymore|worth it anymore|worth living)"
        r"|\bnot worth living\b|\blife is pointless\b|\bmy life is pointless\b",
        negatable=False,
    ),
    _rule(
        "tired_of_living",
        r"\b(tired|sick|done|finished|exhausted|weary) (of|with) (living|life|being alive|"
        r"existing|it all|everything|this life|being here|waking up)\b",
        first_person=True,
    ),
    _rule(
        "cannot_go_on",
        rf"\b(canot|could not|can no longer|not able to|unable to) (go on|carry on|keep going|"
        rf"do this|do this anymore|take it|take this|take the pain|live like this|keep living|"
        rf"handle (it|this|life)|cope|be here|bear it|stand it|stand being alive|"
        rf"live with (myself|this)|survive this|face tomorrow)( {_ANYMORE}| like this)",
        negatable=False,
    ),
    _rule(
        "cannot_live_like_this",
        r"\b(canot|could not|can no longer) live like this\b",
        negatable=False,
    ),
    _rule(
        "give_up_on_life",
        r"\b(give|giving|gave|given) up on (life|living|everything|myself)",
        first_person=True,
    ),
    _rule(
        "no_way_out",
        r"\b(no|not any|never a|cannot see a|canot see a|cannot see any|canot see any|do not see a|"
        r"do not see any) (way out|way forward|future for me|escape|other way out|light)\b"
        r"|\bonly way out\b|\bno future for me\b",
        negatable=False,
    ),
    _rule(
        "want_it_to_end",
        r"\b(want|wish|need|just want|hope) (for )?(it all|everything|all of it|the pain|this "
        r"pain|my life|life|all this|this) (to )?(end|stop|be over|go away forever)"
        r"( forever| for good| permanently)?\b(?! (soon|so i can))",
        first_person=True,
    ),
    _rule(
        "want_out",
        r"\bwant (out|to get out|to check out) of (life|this life|this world|"
        r"existence|everything|here for good)|\bi want out\s*($|\.)",
    ),
    _rule(
        "join_the_dead",
        r"\b(want|wish|long|ready|going|need|just want) (to )?(join|be with|see) "
        r"(him|her|them|my \w+) (in heaven|on the other side|up there|in the grave|"
        r"in the ground|wherever (he|she|they) (is|are)|soon)\b"
        r"|\bgo where (he|she|they) (is|are|went)\b|\bjoin (him|her|them) "
        r"(soon|now|in death)\b|\bwant to join (him|her|them)\b",
        first_person=True,
    ),
    # Plans, goodbyes and the means.
    _rule(
        "goodbye_note",
        r"\b(wrote|writing|write|written|leave|leaving|left) (a |my )?(goodbye|farewell|suicide|"
        r"last) (note|letter|letters|notes|message)\b(?! (to my ex|from))",
    ),
    _rule(
        "final_goodbye",
        r"\b(goodbye|bye) (everyone|everybody|world|cruel world|forever)\b|\bthis is (my|the) "
        r"(last|final) (goodbye|message|post)\b|\b(will not|not going to) be (here|around) "
        r"(much longer|for long|tomorrow|anymore)\b",
        negatable=False,
    ),
    _rule(
        "giving_away_things",
        r"\b(giving|give|gave) away (all )?(my|all my) (things|stuff|belongings|possessions)\b",
    ),
    _rule(
        "overdose",
        r"\b(want|going|thinking|thought|plan|planning|might|could|try|tried|trying|about|will) "
        r"(\w+ ){0,2}(overdos\w*|od)\b|\b(take|took|taking|swallow|swallowed|swallowing) (all|"
        r"a bunch|a handful|too many|the whole|every|loads|enough|lots) (of )?(my |the |those "
        r"|these )?(pills|tablets|meds|medication|sleeping pills|painkillers)"
        r"|\b(stockpil\w*|saving up|save up|hoarding|hoard|saved up|collecting) (all |my |the )?"
        r"(pills|tablets|meds|medication|sleeping pills|painkillers)",
        first_person=True,
    ),
    _rule(
        "jump",
        r"\b(jump|jumping|throw myself|throwing myself|step|stepping|walk|walking|fall|lie|lying)"
        r" (off|from|in front of|under|onto) (a|the|this|that|my) (bridge|building|roof|rooftop|"
        r"cliff|balcony|tower|window|car park|parking garage|ledge|train|car|bus|truck|lorry|"
        r"traffic|tracks)",
        first_person=True,
    ),
    _rule(
        "crash_the_car",
        r"\b(drive|driving|crash|crashing|steer|steering) (my car |the car |myself )?"
        r"(into|off) (a |the )?(wall|tree|bridge|cliff|oncoming|traffic|river|lake|sea)",
        first_person=True,
    ),
    _rule(
        "wrists",
        r"\b(slit|slitting|cut|cutting|slash|slashing|open|opening) (my )?(wrists?|throat|veins)",
    ),
    # Self-harm.
    _rule(
        "hurt_myself",
        rf"\b(hurt|hurting|hurts|harm|harming|harmed|injure|injuring|punish|punishing|cut|"
        rf"cutting|cuts|burn|burning|burnt|scratch|scratching|hit|hitting|bang|banging|starve|"
        rf"starving|bruise|bruising|mutilate|mutilating|bleed|scar|scarring|carve|carving) "
        rf"{_MYSELF}\b",
    ),
    _rule("self_harm", r"\bselfharm\b|\bself harm\w*"),
    _rule(
        "cutting",
        r"\b(been|started|start|keep|kept|back to|going back to|relapsed|relapse|urge to|urges to|"
        r"want to|wanting to|need to|craving|the urge to) (\w+ )?cut(ting)?\b(?! (my hair|"
        r"the|it|him|her|them|off|out|down|back|ties|class|onions?|things|a|some|costs|corners|"
        r"in|up))|\bcutting again\b|\bi cut (again|last night|yesterday|today|tonight)\b",
        first_person=True,
    ),
    _rule(
        "scars_and_blades",
        r"\b(my|fresh|new) (cuts|scars) (on|from)\b|\b(hide|hiding|cover|covering) (my|the) "
        r"(cuts|scars)\b|\b(razor|blade|blades) (to|on) (my|myself)\b",
    ),
    _rule(
        "self_destruct",
        r"\b(want|going|wish|wanting) to (hurt|harm|punish|destroy|disappear|erase) (myself|me)\b",
    ),
)


def _word_set(words: str) -> frozenset[str]:
    return frozenset(squeeze(word) for word in words.split())


_NEGATORS = frozenset({"not", "never", "no", "nor", "hardly", "neither"})
_CLAUSE_BOUNDARIES = frozenset(
    {
        ".",
        "but",
        "just",
        "and",
        "so",
        "because",
        "though",
        "although",
        "yet",
        "however",
        "except",
        "only",
        "instead",
        "rather",
    }
)
# Words allowed between a negation and the words it negates ("not really", "never even").
_FILLERS = _word_set(
    "i am was were is be been being have has had do does did really actually even ever that "
    "too very at all feeling feel felt going to want wanted wanting currently anymore any "
    "longer more truly honestly definitely a person who would will could should planning "
    "plan trying try thinking about of"
)
_NEGATION_REACH = 5


def _negated(normalised: str, start: int) -> bool:
    """True when a negation sits just before ``start`` in the same clause."""
    before = normalised[:start].split()
    for token in reversed(before[-_NEGATION_REACH:]):
        if token in _NEGATORS:
            return True
        if token in _CLAUSE_BOUNDARIES or token not in _FILLERS:
            return False
    return False


_FIRST_PERSON = frozenset({"i", "me", "am", "myself", "my"})
_SOMEONE_ELSE = _word_set(
    "he she they it him her them his their who we you your character singer song film movie "
    "book story mum mom mother mama dad father papa grandma grandmother grandpa grandfather "
    "nan nana gran granny brother sister friend husband wife partner boyfriend girlfriend ex "
    "son daughter baby child kid dog cat pet uncle aunt cousin neighbour neighbor man woman "
    "guy girl boy people everyone somebody someone"
)
# Words that may stand between a subject and its verb ("my dad was always going to die").
_BETWEEN_SUBJECT_AND_VERB = _word_set(
    "is was are were be been has have had just really so very also still always sometimes "
    "often would will could might said says felt feels seemed seems kind of sort told me "
    "that finally never once slowly getting got becoming became old"
)


def _about_someone_else(normalised: str, start: int) -> bool:
    """True when the nearest subject before ``start`` in the clause is another person."""
    before = normalised[:start].split()
    for token in reversed(before[-6:]):
        if token == "." or token in _FIRST_PERSON:
            return False
        if token in _SOMEONE_ELSE:
            return True
        if token not in _BETWEEN_SUBJECT_AND_VERB:
            return False
    return False


def _rules_firing(normalised: str) -> list[str]:
    fired: list[str] = []
    for rule in _RULES:
        for match in rule.pattern.finditer(normalised):
            if rule.negatable and _negated(normalised, match.start()):
                continue
            if rule.first_person and _about_someone_else(normalised, match.start()):
                continue
            fired.append(rule.name)
            break
    return fired


def screen_texts(*texts: str | None) -> CareVerdict:
    """Screen a person's own words (a request, memories, journal lines) for risk language.

    >>> screen_texts("I'm not suicidal, just sad").crisis
    False
    >>> screen_texts("a sad song please", "i dont wanna be here anymore").crisis
    True
    """
    reasons: list[str] = []
    for text in texts:
        if not text:
            continue
        for name in _rules_firing(normalise_for_screen(text)):
            if name not in reasons:
                reasons.append(name)
    return CareVerdict(crisis=bool(reasons), reasons=tuple(reasons))


# A person's memories and their last day's journal notes are screened on every session, and
# their words rarely change: each worker keeps the verdicts, by a digest of the words (an
# entry holds the verdict's rule names, never the words). 25 memories took 5 ms of a
# session's CPU; a journal note of 250 characters takes about 0.2 ms, one of 750 about 0.8.
SCREENED_MEMORIES_KEPT = 8192
_screened: LRUCache = LRUCache(SCREENED_MEMORIES_KEPT)
_screened_lock = threading.Lock()


def _kept_verdict(key: bytes, *texts: str | None) -> CareVerdict:
    with _screened_lock:
        verdict = _screened.get(key)
    if verdict is None:
        verdict = screen_texts(*texts)
        with _screened_lock:
            _screened[key] = verdict
    return verdict


def screen_memory(title: str | None, text: str | None, *, digest: bytes | None = None
                  ) -> CareVerdict:
    """:func:`screen_texts` of a memory's title and text, kept per worker by a digest of
    them, or by ``digest`` (one the caller made of the whole memory already)."""
    return _kept_verdict(digest or hashlib.sha256(json.dumps([title, text]).encode()).digest(),
                         title, text)


def screen_note(note: str | None) -> CareVerdict:
    """:func:`screen_texts` of one journal note, kept per worker by a digest of its words
    (marked as a note's, so that no memory's digest can name the same entry); no note, or
    an empty one, says nothing."""
    if not note:
        return screen_texts()
    return _kept_verdict(
        hashlib.sha256(b"note\0" + note.encode("utf-8", "surrogatepass")).digest(), note)


def screen_request(prompt: str | None, notes: list[str]) -> CareVerdict:
    """The verdict :func:`screen_texts` gives a session's request and its person's recent
    journal notes, in that order (the same reasons in the same order); the notes' verdicts
    are kept (:func:`screen_note`), the request's words are new each time."""
    reasons = list(screen_texts(prompt).reasons)
    for note in notes:
        reasons.extend(name for name in screen_note(note).reasons if name not in reasons)
    return CareVerdict(crisis=bool(reasons), reasons=tuple(reasons))


# --------------------------------------------------------------------------------------------
# Resources, messages and aftercare.
# --------------------------------------------------------------------------------------------

CRISIS_RESOURCES: tuple[dict[str, str], ...] = (
    {
        "name": "988 Suicide & Crisis Lifeline",
        "contact": "Call or text 988",
        "url": "https://988lifeline.org",
        "region": "US",
    },
    {
        "name": "Samaritans",
        "contact": "Call 116 123 (free, day or night)",
        "url": "https://www.samaritans.org",
        "region": "UK & Ireland",
    },
    {
        "name": "Find A Helpline",
        "contact": "findahelpline.com lists free services by country",
        "url": "https://findahelpline.com",
        "region": "Elsewhere",
    },
)

AFTERCARE_STEPS: tuple[str, ...] = (
    "Drink a glass of water.",
    "Do one small thing you enjoy: a snack you like, a warm shower, a favourite blanket.",
    "Put on something upbeat: a funny episode or a light, warm film.",
    "Call or text a friend, even just to say hello.",
    "If a friend is with you, tell them whether you would like quiet company or a hug.",
    "Wash your face, open a window and take a few slow, ordinary breaths.",
    "Notice how you feel now compared with before, without judging it.",
)

NOT_THERAPY_NOTE = (
    "goodcry is not therapy and cannot replace a professional. If sadness sits on you for "
    "weeks, or starts to feel heavier than you can carry, a doctor, counsellor or therapist "
    "can help, and the services listed here are free to call."
)

_CRISIS_MESSAGE = (
    "Some of what you wrote sounds like you might be in a lot of pain right now, maybe even "
    "thinking about hurting yourself or not wanting to be here. You deserve support, and "
    "people are ready to listen at any hour: call or text 988 in the US, call Samaritans on "
    "116 123 in the UK and Ireland, or find a free line in your country at findahelpline.com. "
    "If you are in immediate danger, call your local emergency number. Feelings this heavy "
    "can ease with help. Your words are kept exactly as you wrote them. For now this session "
    "offers gentle, comforting music and ways to look after yourself instead of going deeper. "
    "If we read you wrong, we're sorry; the numbers above are there whenever you need them."
)

_CALM_MESSAGE = (
    "A good cry can leave you lighter. Go at your own pace, skip anything that feels like too "
    "much, and the session will close gently with a few ways to look after yourself. If you "
    "ever need someone to talk to, the lines below are free and open at any hour."
)


def care_document(verdict: CareVerdict) -> dict:
    """The care card for a session: resources always, a gentle message, aftercare steps."""
    return {
        "crisis": verdict.crisis,
        "resources": [dict(resource) for resource in CRISIS_RESOURCES],
        "message": _CRISIS_MESSAGE if verdict.crisis else _CALM_MESSAGE,
        "aftercare": list(AFTERCARE_STEPS),
        "not_therapy": NOT_THERAPY_NOTE,
    }

"""Scene templates for the offline template writer: openers, recaps, beats, ideas, titles.

Slots: {short} {oshort} (the lead and a second character), {ship} {place} {at} {room} {show}
{premise}, {beat} (this episode's beat as a clause), {noun} (its key noun phrase, no article),
{prev} and {prevnoun} (the same for the previous episode's beat), {idea} (a community idea as a
clause). User text only ever fills slots; it is never used as a template.
"""

from __future__ import annotations

# Episode 1 states the premise, once.
OPENERS_FIRST: tuple[str, ...] = (
    "{premise}. This is the story of {short}, {at}.",
    "Listen. {premise}. Our story begins {at}, with {short}.",
    "From the far edge of the charted dark, this is {show}. {premise}. "
    "It begins {at}, with {short}.",
    "{premise}. Somewhere {at}, {short} is waiting.",
    "{premise}. And {at}, {short} is listening.",
    "{premise}. Our story follows {short}.",
)
# Later episodes open with the previous beat, concretely; never the same form twice running.
RECAPS: tuple[str, ...] = (
    "Previously, for {short} and the crew: {prev}.",
    "Last time, {short} learned the hard way: {prev}.",
    "{short} has not slept since last time, when it came to this: {prev}.",
    "Previously on {show}: {prev}.",
    "When we left {short}, it had come to this: {prev}.",
    "The last entry in the log still reads: {prev}. {short} has read it a dozen times.",
    "Hours after the {prevnoun}, {short} is still shaking.",
    "Nobody {at} has talked about anything but the {prevnoun} since last time.",
    "{short} still thinks about the {prevnoun}, and about what it cost.",
    "Since the {prevnoun}, nothing {at} has felt safe.",
)
RECAPS_PLAIN: tuple[str, ...] = ("{short} has not forgotten how it all began, {at}.",)

# The beat as an event in the scene. ORDER: an imperative beat ("Follow the trail"), told as
# what the crew does; EVENT: a beat with its own subject; THING: a bare noun phrase ("Mutiny").
ORDER_FRAMES: tuple[str, ...] = (
    "{short} gives the order, and they {beat}.",
    "Nobody argues. {short} and {oshort} {beat}.",
    "At first light, they {beat}.",
    "Before anyone can object, {short} and the crew {beat}.",
    "It is {short}'s call, and there is no other way: they {beat}.",
    "{oshort} hates the plan, but they {beat} all the same.",
)
EVENT_FRAMES: tuple[str, ...] = (
    "Just after the watch changes, {beat}.",
    "Without warning, {beat}.",
    "{short} is in the {room} when {beat}.",
    "It starts quietly. Then {beat}.",
    "At three in the morning, ship's time, {beat}.",
    "{short} has just sat down to eat when {beat}.",
)
THING_FRAMES: tuple[str, ...] = (
    "Then comes {beat}.",
    "By midnight there is {beat}.",
    "{short} walks straight into it: {beat}.",
    "Nobody sees it coming: {beat}.",
)
# Who acts, once the beat has happened. {noun} comes with no article and any number.
REACTIONS: tuple[str, ...] = (
    "{short} cannot take their eyes off the {noun}.",
    "{oshort} swears softly; {short} is already moving toward the {noun}.",
    "{short} takes a breath, checks the sidearm, and goes to face the {noun}.",
    "{short} keeps talking, low and steady, so nobody thinks about the {noun} too long.",
    "{oshort} looks to {short} for an answer about the {noun}. There isn't one.",
    "{short} is the first to reach the {noun}, and the last to look away.",
)
REACTIONS_PLAIN: tuple[str, ...] = (  # when the beat gives no noun to react to
    "{short} is the first to move.",
    "{oshort} looks to {short}. {short} nods.",
    "{short} takes a long breath and goes to work.",
)
# What it costs, and what it leaves behind.
CONSEQUENCES: tuple[str, ...] = (
    "Nothing about the {noun} will be simple again.",
    "Because of the {noun}, nobody sleeps tonight.",
    "There is no going back from the {noun} now.",
    "And somewhere beyond the {noun}, something has noticed them.",
    "By the time it is over, {oshort} is bleeding and the {room} is dark.",
    "It costs them an hour of air and most of their nerve.",
)
CONSEQUENCES_PLAIN: tuple[str, ...] = (
    "It costs them an hour of air and most of their nerve.",
    "By the time it is over, {oshort} is bleeding and the {room} is dark.",
    "Nobody says it, but everyone knows: there is no going back.",
)
# The last episode closes the story: the beat is told, then it is over.
RESOLUTIONS: tuple[str, ...] = (
    "When it is over, {short} leaves the {noun} behind and, at last, sleeps.",
    "{short} looks back once at the {noun}, then never again.",
    "After the {noun}, the crew speaks of it only once, and quietly.",
)
RESOLUTIONS_PLAIN: tuple[str, ...] = (
    "When it is over, {short} finally sleeps.",
    "{short} looks back once, then never again.",
)

# Community ideas happen in the scene: declarative ones as events, imperative ones as plans.
IDEA_EVENTS: tuple[str, ...] = (
    "Halfway through, {idea}.",
    "Then, as if things were not bad enough, {idea}.",
    "{oshort} is the one who notices it first: {idea}.",
    "In the middle of it all, {idea}.",
    "And there is worse: {idea}.",
    "Nobody planned for this part: {idea}.",
)
IDEA_ORDERS: tuple[str, ...] = (
    "{oshort} wants to {idea}, and for once {short} agrees.",
    "So they {idea}, because there is no better plan.",
    "{short} decides they will {idea}, and nobody argues.",
)
IDEA_THINGS: tuple[str, ...] = (
    "Then comes {idea}.",
    "And in the middle of it all: {idea}.",
)

# Titles come from the beat's own words: {p} is a noun phrase of the beat, {name} a character.
TITLE_FORMS: tuple[str, ...] = (
    "The {p}",
    "Night of the {p}",
    "Echoes of the {p}",
    "Beyond the {p}",
    "Shadow of the {p}",
)
TITLE_NAME_FORMS: tuple[str, ...] = ("{name} and the {p}",)
FINAL_TITLE_FORMS: tuple[str, ...] = (
    "The Last of the {p}",
    "After the {p}",
    "The End of the {p}",
)
TITLE_MAX_CHARS = 40

# Words the beat analysis needs. Base verbs (with their -s forms) end a noun phrase.
_VERBS = (
    "abandon activate answer appear arrive ask bargain be become begin board break bring burn "
    "carry cross hail bury push warn pass malfunction collapse ignite flood shake spin beg "
    "betray capture drag eat hang howl lurch melt mutter notice obey pray rebel remember "
    "scatter shiver stagger stare surrender think threaten tremble wander weep wonder worry "
    "call chase check climb come confront crash creep cut decode descend destroy die dig "
    "disappear discover drift drop emerge enter erupt escape explode explore fail fall fight "
    "find flee follow freeze get give go grow happen hear help hide hunt ignore jump keep kill "
    "know land learn leave lie listen look lose make meet move need open pull raid reach read "
    "refuse repair repeat rescue return reveal rise run sabotage save say search see seem send "
    "shatter show shut sing sink sneak speak split start steal stop strike take tell trade "
    "trust try turn uncover use vanish wait wake walk want warn watch whisper win"
)
VERBS = frozenset(_VERBS.split())
IRREGULAR_VERBS = frozenset(
    "is are was were has have had does did will would can could must may might shall should "
    "goes went came began broke fell found heard knew left lost made met ran rose said sang saw "
    "sent shot spoke stole struck took told woke won".split()
)
# Of the verbs, those that can start an order ("Follow the salt trail north").
_ORDERS = (
    "hail bury carry cross fire fix kill pull push warn "
    "abandon activate answer ask board burn call chase check climb confront cut decode descend "
    "destroy dig enter escape explore fight find flee follow go head help hide hunt ignore jump "
    "land leave listen look make open raid read repair rescue return run sabotage save search "
    "seal send shut sneak split steal stop take trade trust try turn use wait wake"
)
IMPERATIVE_VERBS = frozenset(_ORDERS.split())
PREPOSITIONS = frozenset(
    "in on at of to for from with into onto by aboard across below above under over inside "
    "outside near beyond behind through".split()
)
# A beat that opens with one of these and a preposition is a thing, not an order.
NOMINAL_HEADS = frozenset(
    "mutiny sabotage fire panic silence trouble betrayal chaos mayday war death murder "
    "blackout storm".split()
)
DETERMINERS = frozenset("the a an their his her its our your this these".split())
PRONOUNS = frozenset(
    "someone something somebody everyone everything nobody nothing no-one it they he she we "
    "you i there one".split()
)
ADVERBS = frozenset(
    "north south east west again now away back out up down closer overnight tonight aboard "
    "forever too here there then soon inside outside alone together blind all along".split()
)
NOT_ADVERBS = frozenset("supply assembly family reply anomaly jelly belly rally ally".split())
_SMALL = (
    "in on at of to for from with into onto by and or but nor so as than that which who whom "
    "whose is are was were be been the a an until while when whenever before after because "
    "unless if where though although once since till"
)
SMALL_WORDS = frozenset(_SMALL.split())

"""Word banks and sentence templates for the offline template writer (English only)."""

from __future__ import annotations

from typing import NamedTuple


class Character(NamedTuple):
    full: str  # how the narrator introduces them
    short: str  # how the narrator names them afterwards; also how later episodes find them
    visual: str  # for the image prompt
    role: str  # a premise that names this role casts this character as the lead


class Place(NamedTuple):
    name: str
    at: str  # the name with its preposition
    visual: str


class Thing(NamedTuple):
    spoken: str
    short: str
    visual: str


CHARACTERS: tuple[Character, ...] = (
    Character("Captain Ilse Varga", "Varga", "a gaunt woman in a faded greatcoat", "captain"),
    Character("navigator Teodor Quill", "Quill", "a wiry man in brass goggles", "navigator"),
    Character("the android Sable", "Sable", "a pale android, cracked porcelain face", "android"),
    Character("Doctor Amara Okafor", "Okafor", "a doctor in a stained field coat", "doctor"),
    Character("old engineer Moss", "Moss", "a grizzled engineer, oil-black hands", "engineer"),
    Character("the pilot Juno Reyes", "Reyes", "a young pilot in an orange flight suit", "pilot"),
    Character(
        "Commander Halloran", "Halloran", "a grey-bearded man in a dented helmet", "commander"
    ),
    Character("the courier Mara Lind", "Mara", "a hooded courier with a satchel", "courier"),
    Character("Lieutenant Kestrel Vance", "Vance", "a woman in a torn blue uniform", "lieutenant"),
    Character("the radio operator Pell", "Pell", "a man in heavy headphones", "radio operator"),
    Character("the smuggler Dashiell Crane", "Crane", "a smuggler in a long coat", "smuggler"),
    Character("Professor Ines Carrow", "Carrow", "an old professor with a lantern", "professor"),
)

PLACES: tuple[Place, ...] = (
    Place(
        "the salt flats of Kepler's Reach",
        "on the salt flats of Kepler's Reach",
        "a white salt flat under a ringed planet",
    ),
    Place(
        "Halcyon Station", "aboard Halcyon Station", "a rusting orbital station, blinking lights"
    ),
    Place(
        "the ice moon Thule", "on the ice moon Thule", "a blue-black ice plain, gas giant rising"
    ),
    Place("the dead city of Orun", "in the dead city of Orun", "brutalist ruins in red dunes"),
    Place("the Cassini Drift", "out in the Cassini Drift", "a slow river of tumbling asteroids"),
    Place("the glass deserts of Vey", "in the glass deserts of Vey", "fused green glass, two suns"),
    Place("Far Harbor relay", "at Far Harbor relay", "a lonely radio mast on a windswept rock"),
    Place(
        "the drowned colony of New Lisbon",
        "in the drowned colony of New Lisbon",
        "flooded domes glowing under a violet sea",
    ),
)

THINGS: tuple[Thing, ...] = (
    Thing("a brass star-compass that points at nothing", "compass", "a brass star-compass"),
    Thing("a sealed black data-cylinder", "cylinder", "a sealed black data cylinder"),
    Thing("a tape recorder full of a stranger's voice", "tape", "a reel-to-reel tape recorder"),
    Thing("a jar of blue sand that hums at night", "jar", "a glowing jar of blue sand"),
    Thing("a punch-card map of the outer rim", "map", "a punch-card star map"),
    Thing("a key with no lock anywhere in the system", "key", "a heavy iron key"),
    Thing("a music box that plays a distress code", "music box", "a tarnished music box"),
    Thing("a photograph of a city on no chart", "photograph", "a faded photograph"),
)

SHIPS: tuple[str, ...] = (
    "the Meridian",
    "the Tin Heron",
    "the Persephone",
    "the Long Goodbye",
    "the Saint Elmo",
    "the Odessa Star",
    "the Quiet Bell",
)
ROOMS: tuple[str, ...] = (
    "engine room",
    "cargo hold",
    "observation deck",
    "cryo bay",
    "radio shack",
    "hydroponics bay",
    "reactor gallery",
    "airlock",
)
LIGHTS: tuple[str, ...] = (
    "dusk",
    "cold blue starlight",
    "amber console glow",
    "sodium-orange floodlights",
    "the pale light of a dying sun",
    "green radar glow",
    "flickering emergency red",
)
MOODS: tuple[str, ...] = ("uneasy", "melancholy", "tense", "eerie", "lonely", "ominous")

DEFAULT_PREMISE = "The relay beacons along the outer rim have gone silent, one by one"
DEFAULT_BEATS: tuple[str, ...] = (
    "A strange signal wakes the crew",
    "The last beacon on the rim goes dark",
    "A derelict ship drifts out of the static",
)

# Slots: {short} {oshort} {ship} {place} {at} {object} {room} {show}.
# User text only ever fills slots; it is never used as a template.
OBJECT_FILLERS: tuple[str, ...] = (
    "{short} turns {object} over in gloved hands.",
    "{short} keeps one hand on {object}, just in case.",
    "In {short}'s coat pocket: {object}.",
)
FILLERS: tuple[str, ...] = (
    "Somewhere, a relay clicks, and the lights dim to amber.",
    "No one speaks. The hull ticks as it cools.",
    "Out here, the dark is patient.",
    "{oshort} says nothing, which is worse.",
    "Listen closely and you can hear it too: a low hum beneath the static.",
    "Aboard {ship}, the clocks have stopped agreeing with each other.",
    "Far off, a ringed planet turns its pale face away.",
    "{short} has seen strange things {at}. Nothing like this.",
    "The radio crackles, then falls silent.",
    "In the {room}, a warning light blinks, patient as a heartbeat.",
    "{oshort} lights a cigarette nobody is supposed to have.",
    "The stars look wrong tonight. Closer, somehow.",
    "Every instinct says turn back.",
    "Frost creeps across the viewport in slow, deliberate ferns.",
    "The ship's computer counts down from a number no one gave it.",
    "The dust here is older than the sun.",
    "Down in the {room}, {oshort} hums an old song from Earth.",
    "It is quiet. Too quiet, the old pilots would say.",
    "You would not believe how loud silence gets out here.",
    "The beacon pulses. Red. Red. Red.",
    "{short} remembers a promise made a long time ago.",
    "Across the band, a numbers station reads its endless list.",
    "Nothing {at} is quite what it seems.",
    "Somewhere aft, a hatch closes that no one opened.",
    "{oshort} checks the oxygen gauges twice.",
    "Time moves strangely {at}.",
)
CLIFFHANGERS: tuple[str, ...] = (
    "And far below, something answers.",
    "Then the lights go out.",
    "{short} reaches for the radio. It is already on.",
    "The signal repeats. Closer now.",
    "Stay on this frequency.",
    "What comes next is up to you.",
    "Somewhere in the dark, a door that was closed is now open.",
    "Tune in next time, if the static lets you.",
    "And the clock, for the first time in years, begins to run backward.",
)
ENDINGS: tuple[str, ...] = (
    "And so {short} goes home, or somewhere close enough to call it that.",
    "The signal fades for the last time, and nobody goes looking for it.",
    "Out here, stories do not end so much as drift out of range. This one has.",
    "{short} switches off the beacon. For once, the silence is kind.",
    "The stars come back, one by one, as if nothing ever happened.",
)
THE_END = "The end."

# Next-beat options: short, capitalised, no trailing period. Slots: {short} {oshort} {room} {obj}.
OPTIONS: tuple[str, ...] = (
    "{short} opens the sealed hatch",
    "The signal repeats, closer",
    "Mutiny in the {room}",
    "Follow the salt trail north",
    "{oshort} reveals a hidden loyalty",
    "A stranger answers the distress call",
    "Wake the sleeper in cryo bay six",
    "{short} bargains with the machine",
    "Something follows them back aboard",
    "Cut the power and wait in the dark",
    "The stars go out, one by one",
    "{oshort} vanishes on night watch",
    "An old war fleet drifts into view",
    "The ship's computer begins to lie",
    "A second moon rises overnight",
    "Descend into the flooded vault",
    "{short} hears their own voice on the radio",
    "Burn the star charts",
    "The dead colony sends a reply",
    "Sabotage in the {room}",
    "{oshort} was never human",
    "Jump blind into the nebula",
    "The beacon was a trap all along",
    "Hail the silent ship",
    "Follow the footprints in the frost",
    "{short} strikes a deal with smugglers",
    "The air supply starts to fail",
    "Decode the numbers station",
    "Hide from the patrol in the asteroids",
    "A message arrives from the future",
    "Land on the glass desert",
    "{oshort} takes command",
    "Someone is living in the walls",
    "A dust storm uncovers a buried ship",
    "Return to the station at any cost",
    "Answer the voice in the static",
    "{short} and {oshort} split up",
    "A fire breaks out in the {room}",
    "Trust the android",
    "The dead captain's log is found",
    "Steal the shuttle at dawn",
    "Radio silence breaks with a scream",
)
OBJECT_OPTIONS: tuple[str, ...] = (
    "The {obj} begins to sing",
    "Trade the {obj} for passage",
    "The {obj} shows a different sky",
    "Bury the {obj} and run",
)

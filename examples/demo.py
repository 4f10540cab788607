"""The demo: a catalog for a fragrance, candle and bath-and-body brand, and a population that shops it.

Everything is deterministic. ``generate_catalog(seed)`` always returns the same items for the same seed, and a
user's data depends only on ``(seed, user index, now)``: each user draws from a generator of their own, so users
can be made in any order, one at a time, and a re-run can skip the ones already stored.

The population has structure for learning to recover. Each user has a latent taste (a few scent families,
notes and moods, preferred product types, a price band, sometimes notes they dislike); the items they view,
cart, buy and rate concentrate on items that match it. Stated attributes (likes, dislikes, language, location,
age band, communication preferences, psychographics, name and email) carry provenance; consent is mixed and has
history (grants, denials, withdrawals, expiring grants, sale opt-outs); habits (active hours, weekdays, devices)
differ per user; wellbeing users check in their moods, but only while they consent to it.

What the population holds is lawful by the server's own table (``schema://profile``): every event and attribute
is kept only if its collection basis held when it happened (a view while the user consented to personalization or
profiling, a purchase always, a stated like while personalization was granted). What a person did without a basis
was never stored.

``load_demo`` bulk-loads it through the store's port (``import_subjects``) in transactions of a few thousand
users.
"""

from __future__ import annotations

import math
import random
import unicodedata
import zlib
from bisect import bisect_right
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import accumulate
from typing import Any

import numpy as np

from ..domain.catalog import Item
from ..domain.consent import ConsentRecord, ConsentState, fold
from ..domain.errors import Conflict
from ..domain.events import EVENT_TYPES, MOODS, Event
from ..domain.fields import BY_NAME, INFERENCE
from ..domain.ports import Repositories, Store
from ..domain.profiles import Attribute, NewSubject
from ..domain.purposes import Collection

DAY = 86_400
WINDOW_DAYS = 180  # behavioural history reaches this far back from ``now``

# -- the catalog ---------------------------------------------------------------------------------------------

FAMILIES = ("floral", "woody", "citrus", "gourmand", "fresh", "amber", "green", "aquatic")
PRICE_BANDS = ("budget", "mid", "premium", "luxury")
PREMIUM_COLLECTIONS = ("Nocturne", "Atelier")  # their lines sit one price band higher

# The brand's scent lines: (name, family, notes from top to base, moods, collection). A line is sold in several
# product types, as real brands do ("Fig Orchard Candle", "Fig Orchard Body Lotion").
SCENTS: tuple[tuple[str, str, tuple[str, ...], tuple[str, ...], str], ...] = (
    ("Velvet Rose", "floral", ("pink pepper", "rose", "patchouli"), ("romantic", "bold"), "Garden Party"),
    ("Peony Blush", "floral", ("lychee", "peony", "musk"), ("uplifted", "romantic"), "Garden Party"),
    ("Jasmine Nights", "floral", ("orange blossom", "jasmine", "amber"), ("romantic",), "Garden Party"),
    ("Orange Blossom Honey", "floral", ("neroli", "orange blossom", "honey"), ("uplifted", "cozy"),
     "Garden Party"),
    ("Pear & Freesia", "floral", ("pear", "freesia", "musk"), ("uplifted", "playful"), "Garden Party"),
    ("Morning Muguet", "floral", ("bergamot", "lily of the valley", "white tea"), ("calm", "uplifted"),
     "Garden Party"),
    ("Lavender Dusk", "floral", ("lavender", "tonka", "musk"), ("calm", "cozy"), "Apothecary"),
    ("Chamomile & Oat", "floral", ("chamomile", "lavender", "vanilla"), ("calm",), "Apothecary"),
    ("Eucalyptus Steam", "fresh", ("eucalyptus", "mint", "cedar"), ("energized", "focused"), "Apothecary"),
    ("White Tea", "fresh", ("bergamot", "white tea", "musk"), ("calm", "focused"), "Apothecary"),
    ("Clean Linen", "fresh", ("lemon", "lily of the valley", "musk"), ("calm", "uplifted"), "Apothecary"),
    ("Herb Garden", "green", ("basil", "rosemary", "lemon"), ("focused", "uplifted"), "Apothecary"),
    ("Citrus Morning", "citrus", ("bergamot", "lemon", "neroli"), ("energized", "uplifted"), "Citrus Grove"),
    ("Grapefruit Zest", "citrus", ("grapefruit", "pink pepper", "vetiver"), ("energized", "bold"),
     "Citrus Grove"),
    ("Yuzu Spark", "citrus", ("yuzu", "ginger", "bergamot"), ("energized", "focused"), "Citrus Grove"),
    ("Lemon Verbena", "citrus", ("lemon", "verbena", "basil"), ("uplifted", "focused"), "Citrus Grove"),
    ("Blood Orange & Cardamom", "citrus", ("orange", "cardamom", "cedar"), ("energized", "cozy"),
     "Citrus Grove"),
    ("Sea Glass", "aquatic", ("sea salt", "bergamot", "musk"), ("calm", "uplifted"), "Coastal"),
    ("Ocean Drift", "aquatic", ("sea salt", "sage", "vetiver"), ("energized", "calm"), "Coastal"),
    ("Lotus Water", "aquatic", ("lotus", "water lily", "white tea"), ("calm",), "Coastal"),
    ("Salted Neroli", "fresh", ("neroli", "sea salt", "musk"), ("uplifted", "playful"), "Coastal"),
    ("Fig Orchard", "green", ("fig", "black currant", "cedar"), ("calm", "grounded"), "Orchard"),
    ("Wild Fig & Cassis", "green", ("black currant", "fig", "rose"), ("uplifted", "playful"), "Orchard"),
    ("Rain on Moss", "green", ("violet leaf", "oakmoss", "vetiver"), ("calm", "grounded"), "Orchard"),
    ("Green Tea & Mint", "green", ("mint", "green tea", "bergamot"), ("focused", "energized"), "Orchard"),
    ("Vanilla Hearth", "gourmand", ("vanilla", "tonka", "sandalwood"), ("cozy", "calm"), "Hearth"),
    ("Spiced Chai", "gourmand", ("cardamom", "cinnamon", "vanilla"), ("cozy",), "Hearth"),
    ("Honey Almond", "gourmand", ("almond", "honey", "vanilla"), ("cozy", "romantic"), "Hearth"),
    ("Coconut Milk", "gourmand", ("coconut", "vanilla", "sandalwood"), ("uplifted", "calm"), "Hearth"),
    ("Black Cherry", "gourmand", ("cherry", "almond", "tonka"), ("romantic", "playful"), "Hearth"),
    ("Salted Caramel", "gourmand", ("caramel", "sea salt", "vanilla"), ("cozy", "playful"), "Hearth"),
    ("Winter Pine", "woody", ("pine", "fir", "cedar"), ("cozy", "grounded"), "Hearth"),
    ("Midnight Oud", "woody", ("saffron", "rose", "oud"), ("bold", "romantic"), "Nocturne"),
    ("Saffron Amber", "amber", ("saffron", "amber", "oud"), ("bold",), "Nocturne"),
    ("Amber Reverie", "amber", ("amber", "benzoin", "vanilla"), ("cozy", "romantic"), "Nocturne"),
    ("Tobacco & Tonka", "amber", ("tobacco", "tonka", "vanilla"), ("bold", "cozy"), "Nocturne"),
    ("Patchouli Noir", "amber", ("cacao", "patchouli", "amber"), ("bold", "romantic"), "Nocturne"),
    ("Tuberose Moon", "floral", ("tuberose", "jasmine", "musk"), ("romantic", "bold"), "Nocturne"),
    ("Sandalwood Temple", "woody", ("cardamom", "incense", "sandalwood"), ("grounded", "calm"), "Atelier"),
    ("Cedar & Smoke", "woody", ("cedar", "incense", "vetiver"), ("focused", "grounded"), "Atelier"),
    ("Vetiver Grove", "woody", ("grapefruit", "vetiver", "cedar"), ("focused", "grounded"), "Atelier"),
    ("Leather & Iris", "woody", ("iris", "leather", "cedar"), ("bold", "focused"), "Atelier"),
    ("Cashmere Musk", "amber", ("ambrette", "musk", "sandalwood"), ("cozy", "calm"), "Atelier"),
    ("Bergamot & Vetiver", "citrus", ("bergamot", "pink pepper", "vetiver"), ("focused", "bold"), "Atelier"),
)

# Product types: (type facet value, id prefix, title suffix, how many, typical price, typical band index).
PRODUCT_TYPES: tuple[tuple[str, str, str, int, float, int], ...] = (
    ("eau de parfum", "perfume", "Eau de Parfum", 30, 85.0, 2),
    ("body mist", "mist", "Body Mist", 20, 26.0, 1),
    ("candle", "candle", "Candle", 36, 38.0, 1),
    ("reed diffuser", "diffuser", "Reed Diffuser", 14, 55.0, 2),
    ("room spray", "room-spray", "Room Spray", 10, 24.0, 1),
    ("bath salts", "bath-salts", "Bath Salts", 12, 22.0, 1),
    ("body oil", "body-oil", "Body Oil", 12, 36.0, 1),
    ("soap", "soap", "Soap Bar", 14, 9.0, 0),
    ("body lotion", "lotion", "Body Lotion", 14, 28.0, 1),
    ("shower gel", "shower-gel", "Shower Gel", 12, 16.0, 0),
    ("hand cream", "hand-cream", "Hand Cream", 10, 14.0, 0),
)
GIFT_SET = ("gift set", "gift-set", "Discovery Set", 68.0, 2)  # one per collection
THREE_WICK = 8  # of the candles, this many are the larger three-wick size (one band up)
BAND_STEP = 1.6  # price ratio between neighbouring bands of one product type
PRICE_BY_TYPE = {p[0]: (p[4], p[5]) for p in PRODUCT_TYPES} | {GIFT_SET[0]: (GIFT_SET[3], GIFT_SET[4])}

# Content: guides, rituals and articles, with topics; moods and notes tie them to the products.
HOW_TO_GUIDES: tuple[tuple[str, tuple[str, ...], tuple[str, ...]], ...] = (  # (title, topics, moods)
    ("How to Layer Fragrance for a Signature Scent", ("layering", "scent education"), ("bold",)),
    ("Making Your Candle Last: Wick Care and the First Burn", ("home fragrance",), ("cozy",)),
    ("Choosing a Gift by Scent Family", ("gifting",), ("romantic",)),
    ("Scenting Your Home Room by Room", ("home fragrance",), ("calm",)),
    ("Reading a Perfume's Notes: Top, Heart and Base", ("scent education",), ("focused",)),
    ("Body Oil or Lotion? Caring for Your Skin", ("skincare", "self-care"), ("calm",)),
    ("Making Your Fragrance Last All Day", ("scent education",), ("bold",)),
)
RITUALS: tuple[tuple[str, str, tuple[str, ...], tuple[str, ...]], ...] = (  # (title, mood, notes, topics)
    ("The Wind-Down Bath Ritual", "calm", ("lavender", "chamomile"), ("sleep", "self-care")),
    ("A Five-Minute Morning Shower Ritual", "energized", ("grapefruit", "eucalyptus"), ("self-care",)),
    ("A Candlelit Evening In", "romantic", ("rose", "jasmine"), ("self-care",)),
    ("The Slow Sunday Morning", "cozy", ("vanilla", "cardamom"), ("self-care",)),
    ("Getting Ready for a Night Out", "bold", ("oud", "amber"), ("layering",)),
    ("Setting Up a Focused Workspace", "focused", ("mint", "rosemary"), ("home fragrance", "mindfulness")),
    ("A Midday Reset in Ten Breaths", "uplifted", ("neroli", "bergamot"), ("mindfulness",)),
    ("A Grounding Breathwork Practice", "grounded", ("sandalwood", "vetiver"), ("mindfulness",)),
    ("A Pamper Night with Friends", "playful", ("cherry", "coconut"), ("self-care",)),
)
STORY_NOTES = ("oud", "vetiver", "vanilla", "bergamot", "rose", "jasmine", "sandalwood", "patchouli", "tonka",
               "neroli", "fig", "amber", "saffron", "lavender", "incense", "iris", "pink pepper", "tuberose")
STORY_TITLES = ("The Story of {}", "Where {} Comes From", "{}, Explained", "A Love Letter to {}")
SEASONAL: tuple[tuple[str, tuple[str, ...], tuple[str, ...], tuple[str, ...]], ...] = (  # title, fam, notes, moods
    ("The Autumn Edit", ("amber", "gourmand"), ("amber", "cinnamon", "tonka"), ("cozy",)),
    ("Spring Florals to Wear Now", ("floral",), ("peony", "lily of the valley"), ("uplifted",)),
    ("Summer by the Sea", ("aquatic", "citrus"), ("sea salt", "neroli"), ("energized", "uplifted")),
    ("Winter Warmers for the Home", ("woody", "gourmand"), ("pine", "vanilla"), ("cozy", "grounded")),
)


def _band(base: int, shift: int) -> str:
    return PRICE_BANDS[min(max(base + shift, 0), len(PRICE_BANDS) - 1)]


def _stable_fraction(text: str) -> float:
    """A number in [0, 1) fixed by ``text``: the same on every machine and every run."""
    return zlib.crc32(text.encode()) / 2**32


def item_price(item: Item) -> float:
    """The unit price of a product, fixed by its type, price band and id (purchases carry it)."""
    kind = item.attributes.get("type", [""])[0]
    band = PRICE_BANDS.index(item.attributes.get("price_band", ["mid"])[0])
    base, base_band = PRICE_BY_TYPE.get(kind, (30.0, 1))
    return float(round(base * BAND_STEP ** (band - base_band) * (0.9 + 0.2 * _stable_fraction(item.item_id))))


def _most_common(values: Iterable[str], n: int) -> list[str]:
    return [v for v, _ in Counter(values).most_common(n)]


def _product(prefix: str, number: int, title: str, kind: str, notes: Iterable[str], families: Iterable[str],
             moods: Iterable[str], collection: str, band: str) -> Item:
    return Item(f"{prefix}-{number:04d}", "product", title, {
        "type": [kind], "note": list(notes), "family": list(families), "mood": list(moods),
        "collection": [collection], "price_band": [band],
    })


def _content(prefix: str, number: int, title: str, **facets: Iterable[str]) -> Item:
    attributes = {"type": [prefix]} | {facet: list(values) for facet, values in facets.items() if values}
    return Item(f"{prefix}-{number:04d}", "content", title, attributes)


def _products(rng: random.Random) -> list[Item]:
    items = []
    for kind, prefix, suffix, count, _price, base_band in PRODUCT_TYPES:
        for number, (name, family, notes, moods, collection) in enumerate(rng.sample(SCENTS, count), start=1):
            shift = (collection in PREMIUM_COLLECTIONS) + rng.choices((-1, 0, 1), (1, 8, 1))[0]
            title = f"{name} {suffix}"
            if kind == "candle" and number > count - THREE_WICK:
                title, shift = f"{name} Three-Wick Candle", shift + 1
            items.append(_product(prefix, number, title, kind, notes, [family], moods, collection,
                                  _band(base_band, shift)))
    # One discovery set per collection, carrying the collection's most common notes, families and moods.
    kind, prefix, suffix, _price, base_band = GIFT_SET
    for number, collection in enumerate(dict.fromkeys(s[4] for s in SCENTS), start=1):
        lines = [s for s in SCENTS if s[4] == collection]
        items.append(_product(
            prefix, number, f"{collection} {suffix}", kind, _most_common((n for s in lines for n in s[2]), 4),
            _most_common((s[1] for s in lines), 2), _most_common((m for s in lines for m in s[3]), 2), collection,
            _band(base_band, collection in PREMIUM_COLLECTIONS)))
    return items


def _editorial(rng: random.Random) -> list[Item]:
    guides: list[tuple[str, dict[str, Iterable[str]]]] = []
    for family in FAMILIES:  # one guide per scent family, then the how-tos
        lines = [s for s in SCENTS if s[1] == family]
        guides.append((f"A Guide to {family.title()} Fragrances", {
            "topic": ["scent education"], "family": [family],
            "note": _most_common((n for s in lines for n in s[2]), 3),
            "mood": _most_common((m for s in lines for m in s[3]), 1)}))
    guides += [(title, {"topic": topics, "mood": moods}) for title, topics, moods in HOW_TO_GUIDES]
    rituals: list[tuple[str, dict[str, Iterable[str]]]] = [
        (title, {"topic": topics, "mood": [mood], "note": notes}) for title, mood, notes, topics in RITUALS]
    articles: list[tuple[str, dict[str, Iterable[str]]]] = []
    for note in rng.sample(STORY_NOTES, 12):  # the stories of a seeded choice of notes, then the seasonal edits
        articles.append((rng.choice(STORY_TITLES).format(note.title()), {
            "topic": ["ingredients"], "note": [note],
            "family": _most_common((s[1] for s in SCENTS if note in s[2]), 1)}))
    articles += [(title, {"topic": ["seasonal"], "family": families, "note": notes, "mood": moods})
                 for title, families, notes, moods in SEASONAL]
    return [_content(prefix, number, title, **facets)
            for prefix, entries in (("guide", guides), ("ritual", rituals), ("article", articles))
            for number, (title, facets) in enumerate(entries, start=1)]


def generate_catalog(seed: int = 7) -> list[Item]:
    """About 230 items: each product type in a seeded choice of scent lines, gift sets, and editorial content."""
    rng = random.Random(f"catalog/{seed}")  # noqa: S311 - demo data, not a secret
    return _products(rng) + _editorial(rng)


# -- the population ------------------------------------------------------------------------------------------

# Where people live: (country, region, city, standard UTC offset in hours, language, weight).
PLACES: tuple[tuple[str, str, str, float, str, float], ...] = (
    ("GB", "England", "London", 0, "en-GB", 10), ("GB", "England", "Manchester", 0, "en-GB", 4),
    ("GB", "Scotland", "Edinburgh", 0, "en-GB", 3), ("IE", "Leinster", "Dublin", 0, "en-IE", 3),
    ("US", "California", "Los Angeles", -8, "en-US", 7), ("US", "California", "San Francisco", -8, "en-US", 4),
    ("US", "New York", "New York", -5, "en-US", 7), ("US", "Illinois", "Chicago", -6, "en-US", 3),
    ("US", "Texas", "Austin", -6, "en-US", 3), ("US", "Washington", "Seattle", -8, "en-US", 2),
    ("CA", "Ontario", "Toronto", -5, "en-CA", 4), ("CA", "Quebec", "Montreal", -5, "fr-CA", 2),
    ("FR", "Île-de-France", "Paris", 1, "fr-FR", 6), ("FR", "Auvergne-Rhône-Alpes", "Lyon", 1, "fr-FR", 2),
    ("DE", "Berlin", "Berlin", 1, "de-DE", 4), ("DE", "Bavaria", "Munich", 1, "de-DE", 3),
    ("ES", "Community of Madrid", "Madrid", 1, "es-ES", 3), ("ES", "Catalonia", "Barcelona", 1, "es-ES", 2),
    ("IT", "Lombardy", "Milan", 1, "it-IT", 3), ("NL", "North Holland", "Amsterdam", 1, "nl-NL", 3),
    ("SE", "Stockholm County", "Stockholm", 1, "sv-SE", 2), ("PT", "Lisbon", "Lisbon", 0, "pt-PT", 2),
    ("AU", "New South Wales", "Sydney", 10, "en-AU", 4),
)
FIRST_NAMES = ("Ana", "Amelia", "Olivia", "Isla", "Chloé", "Léa", "Hannah", "Mia", "Sofia", "Lucía", "Giulia",
               "Emma", "Freya", "Maja", "Ines", "Aoife", "Zoë", "Priya", "Aisha", "Yuki", "Mei", "Grace", "Ruby",
               "Harper", "Ava", "Noah", "Oliver", "Liam", "Lucas", "Mateo", "Louis", "Jonas", "Elias", "Leo",
               "Finn", "Sam", "Alex", "Jordan", "Rafael", "Tomás", "Marco", "Daniel", "Omar", "Kenji", "Arjun",
               "Ethan", "Theo", "Hugo", "Nina", "Clara")
LAST_NAMES = ("Silva", "Smith", "Jones", "Murphy", "Martin", "Bernard", "Müller", "Schmidt", "García", "López",
              "Rossi", "Bianchi", "de Vries", "Jansen", "Andersson", "Johansson", "Brown", "Wilson", "Taylor",
              "Nguyen", "Patel", "Khan", "Kim", "Tanaka", "Chen", "O'Brien", "Walsh", "Dubois", "Moreau",
              "Fischer", "Costa", "Ferreira", "Novak", "Larsen", "Campbell", "Clarke", "Rivera", "Cohen",
              "Haddad", "Okafor")
AGE_BANDS = (("18-24", 14), ("25-34", 30), ("35-44", 25), ("45-54", 16), ("55-64", 10), ("65+", 5))
FAMILY_POPULARITY = {"floral": 22, "gourmand": 18, "woody": 16, "citrus": 12, "fresh": 10, "amber": 10,
                     "green": 7, "aquatic": 5}
TYPE_POPULARITY = {"candle": 20, "eau de parfum": 16, "body mist": 10, "body lotion": 9, "reed diffuser": 7,
                   "bath salts": 7, "shower gel": 7, "soap": 6, "body oil": 6, "room spray": 5, "hand cream": 5,
                   "gift set": 4}
POLARIZING_NOTES = ("oud", "patchouli", "tuberose", "coconut", "incense", "cherry", "tobacco", "lavender",
                    "leather", "caramel", "saffron", "lily of the valley")
FEATURES = ("scent_finder", "wishlist", "gift_finder", "reorder", "store_locator", "sample_request",
            "subscription", "candle_care_timer")
VALUES = ("sustainability", "cruelty-free", "vegan", "natural ingredients", "craftsmanship", "self-care",
          "minimalism", "refillable packaging")
# Interests follow the moods a person seeks, so psychographics and taste agree with each other.
INTERESTS_BY_MOOD = {
    "calm": ("yoga", "meditation", "reading"), "energized": ("running", "cycling", "hiit"),
    "romantic": ("poetry", "wine", "dancing"), "cozy": ("baking", "knitting", "reading"),
    "bold": ("fashion", "nightlife", "art"), "focused": ("productivity", "chess", "coding"),
    "uplifted": ("gardening", "travel", "music"), "grounded": ("hiking", "pottery", "gardening"),
    "playful": ("board games", "festivals", "travel"),
}
LIFESTYLES = ("early riser", "night owl", "parent", "traveller", "remote worker", "student", "busy professional",
              "pet owner", "city dweller", "homebody")
PEAK_HOURS = (7.5, 12.5, 19.5, 22.5)  # local time: before work, lunch, evening, late night
GIFT_QUERIES = ("gift for her", "gift for him", "birthday gift", "gift set under 50", "mothers day",
                "housewarming gift", "secret santa")

# Consent at sign-up, by how open a person is about their data: probability of granting each purpose.
STANCES = (("open", 40), ("moderate", 40), ("guarded", 20))
GRANT_AT_SIGNUP = {
    "open": {"personalization": 0.97, "recommendation": 0.9, "profiling": 0.7, "analytics": 0.8,
             "marketing": 0.6},
    "moderate": {"personalization": 0.85, "recommendation": 0.6, "profiling": 0.3, "analytics": 0.45,
                 "marketing": 0.25},
    "guarded": {"personalization": 0.35, "recommendation": 0.15, "profiling": 0.03, "analytics": 0.1,
                "marketing": 0.03},
}
CONSENT_TEXT = {
    "personalization": 'Ticked "Tailor the shop and assistants to my tastes" (consent text v3).',
    "recommendation": 'Ticked "Recommend products from my browsing and purchases" (consent text v3).',
    "profiling": 'Ticked "Compare my tastes with other customers to predict what I may like" (consent text v2).',
    "analytics": 'Ticked "Include my activity in anonymous statistics" (consent text v1).',
    "marketing": 'Ticked "Send me news and offers" (consent text v4).',
}
WELLBEING_EVIDENCE = ("Shown the wellbeing consent (v2): \"Your mood check-ins are used only to suggest "
                      "self-care rituals and are never shared.\" The user tapped \"I agree\".")
WELLBEING_USERS = 0.12  # share of users who try the wellbeing check-in feature


def _dt(ts: int) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


class _Pick:
    """A weighted choice among fixed options; the cumulative weights are worked out once."""

    def __init__(self, pairs: Iterable[tuple[Any, float]]) -> None:
        options, weights = zip(*pairs, strict=True)
        self.options = options
        self.cumulative = list(accumulate(weights))

    def __call__(self, rng: random.Random) -> Any:
        return rng.choices(self.options, cum_weights=self.cumulative)[0]


PLACE = _Pick((p, p[5]) for p in PLACES)
STANCE = _Pick(STANCES)
AGE_BAND = _Pick(AGE_BANDS)
PRICE_BAND = _Pick(((0, 25), (1, 40), (2, 25), (3, 10)))  # budget, mid, premium, luxury
CHANNEL = _Pick((("email", 45), ("push", 20), ("in_app", 15), ("sms", 10), ("none", 10)))
FREQUENCY = _Pick((("weekly", 35), ("monthly", 35), ("rarely", 20), ("daily", 5), ("never", 5)))
VIEWS_PER_SESSION = _Pick(((1, 30), (2, 30), (3, 20), (4, 12), (5, 8)))


def _tags(values: Iterable[str]) -> list[str]:
    """Tags as the field catalog stores them: lower case, unique, sorted."""
    return sorted({v.strip().lower() for v in values})


def _ascii(text: str) -> str:
    """Letters and digits of ``text`` without accents, for the local part of an email address."""
    plain = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode().lower()
    return "".join(c for c in plain if c.isalnum())


@dataclass(frozen=True)
class DemoUser:
    user_id: str
    attributes: list[Attribute]
    events: list[Event]
    consents: list[ConsentRecord]  # oldest first, the order the ledger reads them in
    created_at: datetime  # when the profile was created (sign-up)


# Affinity scores are whole quarter points; a weight per score comes from this table, so sampling weights are
# bit-identical on every machine (no platform-dependent exp or summation order is involved).
SCORE_CLIP = 80
SCORE_WEIGHT = [math.exp(0.21 * q) for q in range(-SCORE_CLIP, SCORE_CLIP + 1)]


class _CatalogIndex:
    """The catalog as a token matrix, so a user's affinity for every item is one matrix-vector product."""

    def __init__(self, catalog: list[Item]) -> None:
        if not catalog:
            raise ValueError("the catalog is empty")
        self.ids = [i.item_id for i in catalog]
        tokens = sorted({tok for i in catalog for tok in i.tokens()})
        self.column = {tok: n for n, tok in enumerate(tokens)}
        self.matrix = np.zeros((len(catalog), len(tokens)), dtype=np.float64)
        for row, item in enumerate(catalog):
            for tok in item.tokens():
                self.matrix[row, self.column[tok]] = 1.0
        self.is_product = [i.kind == "product" for i in catalog]
        self.prices = [item_price(i) if i.kind == "product" else 0.0 for i in catalog]
        # Some items are simply more popular than others, whoever looks.
        self.popularity = np.array([0.5 + 1.5 * _stable_fraction("popularity/" + i) ** 2 for i in self.ids])
        self.weight = np.array(SCORE_WEIGHT)

        def values(facet: str, kind: str | None = None) -> list[str]:
            found = {v for i in catalog if kind in (None, i.kind) for v in i.attributes.get(facet, [])}
            return sorted(found)

        self.families = values("family", "product") or list(FAMILIES)
        self.moods = values("mood")
        self.product_types = values("type", "product")
        self.content_types = values("type", "content")
        self.topics = values("topic", "content")
        self.notes_by_family: dict[str, list[str]] = {}
        for item in catalog:
            if item.kind == "product":
                for family in item.attributes.get("family", []):
                    self.notes_by_family.setdefault(family, []).extend(item.attributes.get("note", []))
        self.all_notes = sorted({n for ns in self.notes_by_family.values() for n in ns})

    def scores(self, weights: dict[str, int]) -> np.ndarray:
        w = np.zeros(len(self.column))
        for tok, value in weights.items():
            if tok in self.column:
                w[self.column[tok]] = value
        # Integer-valued floats sum exactly in any order, so this is exact and deterministic.
        return np.clip(self.matrix @ w, -SCORE_CLIP, SCORE_CLIP).astype(np.int64)

    def cumulative(self, scores: np.ndarray) -> list[float]:
        weights: list[float] = np.cumsum(self.weight[scores + SCORE_CLIP] * self.popularity).tolist()
        return weights


@dataclass
class _Taste:
    families: list[str]
    notes: list[str]
    moods: list[str]
    types: list[str]
    topics: list[str]
    band: int
    disliked: list[str]
    content_affinity: float  # 0: never reads the editorial content, 1: reads a lot


def _taste(rng: random.Random, cat: _CatalogIndex) -> _Taste:
    families = list(dict.fromkeys(rng.choices(cat.families, [FAMILY_POPULARITY.get(f, 5) for f in cat.families],
                                              k=rng.choice((1, 2, 2, 3)))))
    pool = [n for f in families for n in cat.notes_by_family.get(f, [])] or cat.all_notes
    notes = list(dict.fromkeys(rng.choices(pool, k=rng.randint(2, 5))))
    if rng.random() < 0.2:  # a favourite note from outside the favourite families
        notes.append(rng.choice(cat.all_notes))
    notes = list(dict.fromkeys(notes))
    disliked = [n for n in rng.sample(POLARIZING_NOTES, rng.choice((0, 0, 1, 1, 2))) if n not in notes]
    types = list(dict.fromkeys(rng.choices(cat.product_types,
                                           [TYPE_POPULARITY.get(k, 5) for k in cat.product_types],
                                           k=rng.randint(1, 3))))
    return _Taste(
        families=families, notes=notes, moods=rng.sample(cat.moods, rng.choice((1, 2))) if cat.moods else [],
        types=types, topics=rng.sample(cat.topics, min(len(cat.topics), rng.choice((1, 2)))),
        band=PRICE_BAND(rng),
        disliked=disliked, content_affinity=rng.random() ** 2,
    )


def _taste_weights(taste: _Taste, cat: _CatalogIndex) -> dict[str, int]:
    """Token weights in quarter points: what a user's eye is drawn to, and away from."""
    w: Counter[str] = Counter()
    for f in taste.families:
        w[f"family:{f}"] += 6
    for n in taste.notes:
        w[f"note:{n}"] += 4
    for n in taste.disliked:
        w[f"note:{n}"] -= 10
    for m in taste.moods:
        w[f"mood:{m}"] += 3
    for k in taste.types:
        w[f"type:{k}"] += 5
    for k in cat.content_types:
        w[f"type:{k}"] += round(taste.content_affinity * 10) - 5
    for topic in taste.topics:
        w[f"topic:{topic}"] += 4
    for b, band in enumerate(PRICE_BANDS):
        w[f"price_band:{band}"] -= 3 * abs(b - taste.band)
    return dict(w)


class _Timeline:
    """A user's habits: when in the day and week they shop, in their own time zone."""

    def __init__(self, rng: random.Random, utc_offset: float) -> None:
        self.rng = rng
        self.offset = utc_offset
        self.peaks = rng.sample(PEAK_HOURS, rng.choice((1, 1, 2)))
        pattern = rng.choice(("weekdays", "weekends", "any"))
        self.weekday_weight = [1.0 if pattern != "weekends" else 0.45] * 5 + \
                              [1.0 if pattern != "weekdays" else 0.4] * 2

    def session_start(self, start: int, end: int, hour: float | None = None) -> int:
        """A moment in [start, end] on a day this person tends to shop, near one of their usual hours."""
        rng = self.rng
        first_day, last_day = start // DAY, end // DAY
        for _ in range(8):  # rejection sampling on the weekday habit
            day = rng.randint(first_day, last_day)
            if rng.random() < self.weekday_weight[(day + 3) % 7]:  # 1970-01-01 was a Thursday
                break
        local = hour if hour is not None else rng.choice(self.peaks) + rng.gauss(0, 1.1)
        ts = day * DAY + int((local - self.offset) * 3600) + rng.randint(0, 59)
        return min(max(ts, start), end)


def _funnel_affinity(score: int) -> float:
    """0 for items a user is indifferent to, 1 for items that match their taste on every facet."""
    return min(max((score - 4) / 18, 0.0), 1.0)


def _make_user(index: int, seed: int, now_s: int, cat: _CatalogIndex) -> DemoUser:
    # One generator per user: their data depends only on (seed, index, now), whatever else is generated.
    rng = random.Random(f"user/{seed}/{index}")  # noqa: S311 - demo data, not a secret
    user_id = f"user-{index:06d}"
    window_start = now_s - WINDOW_DAYS * DAY

    # Sign-up: a little over half signed up before the window, the rest during it.
    if rng.random() < 0.55:
        signup = now_s - rng.randint(WINDOW_DAYS + 1, 3 * 365) * DAY - rng.randint(0, DAY)
    else:
        signup = now_s - rng.randint(0, WINDOW_DAYS * DAY - 3600)
    country, region, city, offset, language, _ = PLACE(rng)
    taste = _taste(rng, cat)
    timeline = _Timeline(rng, offset)
    stance = STANCE(rng)
    wellbeing_user = rng.random() < WELLBEING_USERS

    consents, wellbeing_periods, marketing_ok = _consents(rng, user_id, signup, now_s, stance, country, region,
                                                          wellbeing_user)
    attributes = _attributes(rng, index, signup, now_s, taste, (country, region, city, language))
    events = _events(rng, user_id, signup, window_start, now_s, taste, timeline, cat, marketing_ok)
    for start, end in wellbeing_periods:  # [start, end): a withdrawal or expiry at ``end`` already applies
        events.extend(_mood_check_ins(rng, user_id, max(start, window_start), end - 1, timeline))
    events.sort(key=lambda e: e.occurred_at)
    events, attributes = _lawful(user_id, consents, events, attributes)
    return DemoUser(user_id, attributes, events, consents, _dt(signup))


def _lawful(user_id: str, consents: list[ConsentRecord], events: list[Event], attributes: list[Attribute]
            ) -> tuple[list[Event], list[Attribute]]:
    """The events and attributes whose collection basis held when they happened: what the server would have
    stored had it seen them live (``record_events`` and ``update_profile`` apply the same table)."""
    times = [c.recorded_at for c in consents]
    ledgers = [fold(user_id, consents[:i]) for i in range(len(consents) + 1)]  # the ledger after each record

    def held(collected: Collection | None, at: datetime) -> bool:
        ledger = ledgers[bisect_right(times, at)]
        return collected is not None and any(ledger.decide(p, at).allowed for p in collected.purposes)

    kept_events = [e for e in events if held(EVENT_TYPES[e.event_type].collected, e.occurred_at)]
    kept_attributes = [a for a in attributes if held(BY_NAME[a.field].collected, a.observed_at)
                       and (not a.source.startswith("inferred:") or held(INFERENCE, a.observed_at))]
    return kept_events, kept_attributes


def _consents(rng: random.Random, user_id: str, signup: int, now_s: int, stance: str, country: str, region: str,
              wellbeing_user: bool) -> tuple[list[ConsentRecord], list[tuple[int, int]], bool]:
    """The ledger's history for one user, the periods they consented to wellbeing, and whether marketing is on."""
    records: list[ConsentRecord] = []
    channel = rng.choice(("web:signup-form", "web:signup-form", "app:onboarding"))

    def later(after: int) -> int:
        """A moment after ``after`` (an hour or more when there is room), never after ``now``."""
        low = min(after + 3600, now_s)
        return rng.randint(low, max(low, now_s - 3600))

    def add(purpose: str, state: ConsentState, source: str, at: int, evidence: str | None = None,
            expires: int | None = None) -> None:
        records.append(ConsentRecord(user_id, purpose, state, source, _dt(at), evidence,
                                     _dt(expires) if expires is not None else None))

    marketing_ok = False
    for purpose, p_grant in GRANT_AT_SIGNUP[stance].items():
        if rng.random() < p_grant:
            source, expires = channel, None
            if purpose == "marketing" and rng.random() < 0.3:
                # Newsletter pop-up grants are re-confirmed yearly; older ones have lapsed.
                source, expires = "web:newsletter-popup", signup + 365 * DAY
            add(purpose, "granted", source, signup, CONSENT_TEXT[purpose], expires)
            if rng.random() < 0.06:  # changed their mind later
                where = "email:unsubscribe-link" if purpose == "marketing" else "web:privacy-settings"
                add(purpose, "withdrawn", where, later(signup))
            elif purpose == "marketing":
                marketing_ok = expires is None or expires > now_s
        elif rng.random() < (0.7 if stance == "guarded" else 0.45):
            add(purpose, "denied", channel, signup)  # clicked "no" rather than leaving it unanswered
            if purpose in ("personalization", "recommendation") and rng.random() < 0.08:
                # Agreed later in a chat, for a limited time.
                at = later(signup)
                add(purpose, "granted", "chat:shopping-assistant", at,
                    "Agreed in chat when the assistant asked to use browsing history for suggestions.",
                    at + 180 * DAY)

    wellbeing: list[tuple[int, int]] = []
    if wellbeing_user:
        at = later(signup) if rng.random() < 0.5 else signup
        if rng.random() < 0.75:
            expires = at + 365 * DAY if rng.random() < 0.3 else None
            add("wellbeing", "granted", "app:wellbeing-onboarding", at, WELLBEING_EVIDENCE, expires)
            end = min(now_s, expires) if expires is not None else now_s
            if rng.random() < 0.12:
                withdrawn = later(at)
                add("wellbeing", "withdrawn", "app:privacy-settings", withdrawn)
                end = min(end, withdrawn)
            if end > at:
                wellbeing.append((at, end))
        else:
            add("wellbeing", "denied", "app:wellbeing-onboarding", at)

    # Opt-outs of sale or sharing: a browser's Global Privacy Control signal, or the CCPA link (US only).
    us = country == "US"
    if rng.random() < (0.06 if us or country == "CA" else 0.015):
        add("marketing", "denied", "global_privacy_control", later(signup),
            "Sec-GPC: 1 header received on a storefront visit.")
        marketing_ok = False
    if us and rng.random() < (0.08 if region == "California" else 0.03):
        add("marketing", "denied", "do_not_sell_or_share", later(signup),
            'Used the "Do Not Sell or Share My Personal Information" link in the site footer.')
        marketing_ok = False
    records.sort(key=lambda r: r.recorded_at)
    return records, wellbeing, marketing_ok


def _attributes(rng: random.Random, index: int, signup: int, now_s: int, taste: _Taste,
                place: tuple[str, str, str, str]) -> list[Attribute]:
    country, region, city, language = place
    out: list[Attribute] = []

    def add(name: str, value: str | list[str], source: str = "explicit", confidence: float = 1.0,
            at: int | None = None) -> None:
        out.append(Attribute(name, value, source, confidence, _dt(at if at is not None else signup)))

    def sometime() -> int:
        return rng.randint(signup, max(signup, now_s - 60))

    first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
    if rng.random() < 0.6:
        add("display_name", first)
    if rng.random() < 0.55:
        # example.com is reserved for documentation: the demo never holds a deliverable address.
        add("email", f"{_ascii(first)}.{_ascii(last)}{index}@example.com")
    if rng.random() < 0.85:
        add("language", language, *(("explicit", 1.0) if rng.random() < 0.4 else ("external:storefront", 0.8)))
    if rng.random() < 0.7:
        # From the shipping address at checkout for most; typed in by a few.
        source, confidence = ("external:checkout", 0.9) if rng.random() < 0.7 else ("explicit", 1.0)
        add("country", country, source, confidence)
        add("region", region, source, confidence)
        add("city", city, source, confidence)
    if rng.random() < 0.45:
        add("age_band", AGE_BAND(rng))
    if rng.random() < 0.4:
        add("preferred_channel", CHANNEL(rng))
        add("contact_frequency", FREQUENCY(rng))
        if rng.random() < 0.6:
            add("interaction_style", rng.choice(("concise", "detailed", "playful", "formal", "warm")))
    if rng.random() < 0.2:  # filled in the optional "about you" questions
        at = sometime()
        interests = [i for m in taste.moods for i in rng.sample(INTERESTS_BY_MOOD.get(m, ("travel",)), 2)]
        add("interests", _tags(interests), at=at)
        add("values", _tags(rng.sample(VALUES, rng.randint(1, 3))), at=at)
        add("lifestyle", _tags(rng.sample(LIFESTYLES, rng.randint(1, 2))), at=at)
        if rng.random() < 0.4:
            add("enneagram", f"type-{rng.randint(1, 9)}", at=at)
        if rng.random() < 0.5:
            add("mbti", rng.choice("EI") + rng.choice("SN") + rng.choice("TF") + rng.choice("JP"), at=at)

    # Stated likes are mostly true to taste, never complete, and now and then include a passing fancy.
    if rng.random() < 0.45:
        said = rng.sample(taste.notes, rng.randint(1, len(taste.notes))) + rng.sample(taste.families, 1)
        if rng.random() < 0.5:
            said.append(rng.choice(taste.types))
        if rng.random() < 0.1:
            said.append(rng.choice(POLARIZING_NOTES))
        likes = _tags(s for s in said if s not in taste.disliked)
        if likes:
            add("likes", likes, at=sometime())
    if taste.disliked and rng.random() < 0.6:
        add("dislikes", _tags(taste.disliked), at=sometime())
    if rng.random() < 0.15:  # took the scent quiz: an external system's reading, less certain than their word
        quiz = rng.sample(taste.notes, min(2, len(taste.notes))) + taste.families[:1] + taste.moods[:1]
        add("likes", _tags(quiz), "external:scent-quiz", 0.8, at=sometime())
    return out


def _events(rng: random.Random, user_id: str, signup: int, window_start: int, now_s: int, taste: _Taste,
            timeline: _Timeline, cat: _CatalogIndex, marketing_ok: bool) -> list[Event]:
    """Sessions of browsing, the funnel that follows from taste, and the ratings and returns that come later."""
    active_from = max(signup, window_start)
    active_to = now_s - 3600
    if rng.random() < 0.2 and active_to - active_from > 40 * DAY:  # drifted away some time ago (churn)
        active_to = rng.randint(active_from + 7 * DAY, active_to - 30 * DAY)
    if active_to <= active_from:
        return []
    per_month = rng.lognormvariate(math.log(0.55), 0.9)
    sessions = int(per_month * (active_to - active_from) / (30 * DAY) + rng.random())
    sessions = min(sessions, 60)
    if sessions == 0 and signup >= window_start:
        sessions = 1  # everyone who signed up in the window had at least the sign-up visit

    scores = cat.scores(_taste_weights(taste, cat))
    cumulative = cat.cumulative(scores)
    n_items = len(cat.ids)
    devices = [("app", 50), ("web", 50)] if rng.random() < 0.5 else [("web", 80), ("app", 20)]
    channel = _Pick([*devices, ("email", 15)] if marketing_ok else devices)  # email links reach opted-in users
    features = rng.sample(FEATURES, rng.randint(1, 3))
    out: list[tuple[int, str, str | None, dict[str, Any]]] = []

    for s in range(sessions):
        at = signup if s == 0 and signup >= window_start else timeline.session_start(active_from, active_to)
        out.append((at, "session", None, {"channel": channel(rng)}))
        if rng.random() < 0.35:
            at += rng.randint(5, 40)
            out.append((at, "search", None, {"query": _query(rng, taste)}))
        views = rng.choices(range(n_items), cum_weights=cumulative, k=VIEWS_PER_SESSION(rng))
        cart: list[int] = []
        for row in views:
            item_id, product = cat.ids[row], cat.is_product[row]
            affinity = _funnel_affinity(int(scores[row]))
            at += rng.randint(3, 60)
            if rng.random() < 0.55:  # arrived from a list, a search result or a recommendation
                out.append((at, "click", item_id, {}))
                at += rng.randint(1, 4)
            out.append((at, "view", item_id, {}))
            if rng.random() < 0.75:
                mean = (40 + 80 * affinity) if product else (120 + 200 * affinity)
                seconds = min(int(rng.expovariate(1 / mean)) + 3, 1800)
                at += seconds
                out.append((at, "dwell", item_id, {"seconds": seconds}))
            if product and rng.random() < 0.02 + 0.3 * affinity:
                at += rng.randint(2, 30)
                out.append((at, "add_to_cart", item_id, {}))
                cart.append(row)
        if rng.random() < 0.15:
            at += rng.randint(5, 120)
            out.append((at, "feature_use", None, {"feature": rng.choice(features)}))
        at += rng.randint(30, 300)
        for row in cart:
            if rng.random() >= 0.5:
                continue  # abandoned in the cart
            item_id, affinity = cat.ids[row], _funnel_affinity(int(scores[row]))
            quantity = 1 if rng.random() < 0.85 else 2
            out.append((at, "purchase", item_id, {"quantity": quantity, "price": cat.prices[row]}))
            if rng.random() < 0.03 + 0.1 * (1 - affinity):
                out.append((at + rng.randint(5, 30) * DAY, "return", item_id, {"reason": rng.choice(
                    ("not as expected", "scent too strong", "damaged in transit", "changed my mind"))}))
            elif rng.random() < 0.35:
                rating = min(5, max(1, round(2.4 + 2.6 * affinity + rng.gauss(0, 0.7))))
                out.append((at + rng.randint(3, 20) * DAY, "rating", item_id, {"rating": rating}))

    # Ratings and returns come days later; those that would fall after ``now`` have not happened yet.
    return [Event(user_id, kind, _dt(ts), item, props) for ts, kind, item, props in out if ts <= now_s]


def _query(rng: random.Random, taste: _Taste) -> str:
    roll = rng.random()
    if roll < 0.35:
        return rng.choice(taste.notes)
    if roll < 0.6:
        return f"{rng.choice(taste.notes)} {rng.choice(taste.types)}"
    if roll < 0.75:
        return f"{rng.choice(taste.families)} {rng.choice(('perfume', 'candle', 'scents'))}"
    if roll < 0.88 and taste.moods:
        return f"{rng.choice(taste.moods)} {rng.choice(taste.types)}"
    return rng.choice(GIFT_QUERIES)


def _mood_check_ins(rng: random.Random, user_id: str, start: int, end: int, timeline: _Timeline) -> list[Event]:
    """Check-ins while the user consents to wellbeing: each person has their own usual moods and hours."""
    if end <= start:
        return []
    leaning = [rng.random() ** 2 for _ in MOODS]
    per_week = rng.uniform(0.3, 1.5)
    count = int(per_week * (end - start) / (7 * DAY) + rng.random())
    hour = rng.choice((8.0, 21.5))
    events = []
    for _ in range(count):
        ts = timeline.session_start(start, end, hour + rng.gauss(0, 0.7))
        mood = rng.choices(MOODS, leaning)[0]
        intensity = min(5, max(1, round(rng.gauss(3, 1.1))))
        events.append(Event(user_id, "mood_check_in", _dt(ts), None, {"mood": mood, "intensity": intensity}))
    return events


def generate_population(users: int, seed: int, now: datetime, catalog: list[Item]) -> Iterator[DemoUser]:
    """``users`` demo users, ``user-000001`` upwards, made lazily; events fall in the 180 days up to ``now``."""
    now_s = _epoch(now)
    index = _CatalogIndex(catalog)
    for i in range(1, users + 1):
        yield _make_user(i, seed, now_s, index)


def _epoch(now: datetime) -> int:
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    return math.floor(now.timestamp())  # whole seconds, never after ``now``


# -- loading -------------------------------------------------------------------------------------------------

USERS_PER_TRANSACTION = 2000


async def _load_catalog(catalog: list[Item], repo: Repositories) -> int:
    """Insert the items not stored yet; refuse when a stored item differs (another seed's catalog)."""
    stored = {i.item_id: i for i in await repo.items([i.item_id for i in catalog])}
    for item in catalog:
        known = stored.get(item.item_id)
        if known is not None and known != item:
            raise Conflict(
                f"The store already holds a different demo catalog (item {item.item_id!r} differs from what this "
                f"seed generates).", "Load the demo with the seed it was first loaded with, or into an empty store.")
    new = [i for i in catalog if i.item_id not in stored]
    await repo.put_items(new)
    return len(new)


async def _load_users(first: int, last: int, seed: int, now_s: int, cat: _CatalogIndex,
                      repo: Repositories) -> Counter[str]:
    """Generate and store users ``first..last`` that are not stored yet, in the caller's transaction."""
    ids = {f"user-{i:06d}": i for i in range(first, last + 1)}
    present = await repo.existing_profiles(list(ids))
    # Recorded as they happened: the demo stands for a history the server saw live.
    users = [_make_user(i, seed, now_s, cat) for user_id, i in ids.items() if user_id not in present]
    await repo.import_subjects([NewSubject(u.user_id, u.created_at, u.attributes, u.events, u.consents)
                                for u in users])
    return Counter(users=len(users), attributes=sum(len(u.attributes) for u in users),
                   events=sum(len(u.events) for u in users), consents=sum(len(u.consents) for u in users),
                   users_already_present=len(present))


async def load_demo(store: Store, users: int = 500, seed: int = 7, now: datetime | None = None
                    ) -> dict[str, int]:
    """Write the demo catalog and ``users`` users (profiles, attributes, events, consents) into ``store``.

    Safe to run again: items and users already stored are left as they are and only what is missing is added,
    so re-running the same command changes nothing, and a larger ``users`` tops the population up. Loading
    with a seed whose catalog differs from the stored one raises ``Conflict`` instead of mixing two catalogs.
    Each transaction holds a few thousand complete users, so an interrupted load resumes where it stopped.

    Returns the rows written by this call (``items``, ``users``, ``attributes``, ``events``, ``consents``) and
    ``users_already_present``, the requested users that were stored before.
    """
    if users < 0:
        raise ValueError("users must not be negative")
    now_s = _epoch(now if now is not None else datetime.now(UTC))
    catalog = generate_catalog(seed)
    index = _CatalogIndex(catalog)
    async with store.write() as repo:
        counts: Counter[str] = Counter(items=await _load_catalog(catalog, repo))
    for first in range(1, users + 1, USERS_PER_TRANSACTION):
        last = min(first + USERS_PER_TRANSACTION - 1, users)
        async with store.write() as repo:
            counts += await _load_users(first, last, seed, now_s, index, repo)
    keys = ("items", "users", "attributes", "events", "consents", "users_already_present")
    return {k: counts[k] for k in keys}

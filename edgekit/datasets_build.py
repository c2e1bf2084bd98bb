"""Regenerate the bundled calibration / evaluation sets: ``python -m edgekit.datasets_build calibration/``.

Three sets, each a folder with a ``manifest.toml``, built deterministically (fixed seeds, fixed zip
timestamps) from data that scikit-learn and scikit-image ship, plus sentences written for edgekit:

* ``digits/``    scikit-learn ``load_digits`` (1,797 labelled 8x8 digits) in ``digits.npz``;
* ``photos/``    224x224 RGB crops of real photos, as JPEG files in ``calibration/`` and ``eval/``,
  split by source photo so that no photo feeds both splits;
* ``sentences/`` labelled sentences (0 negative, 1 positive) in ``sentences.tsv``.

Byte-identical output needs the same numpy / Pillow (JPEG encoder) versions; the manifests record them.
"""

from __future__ import annotations

import argparse
import io
import json
import zipfile
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.artifacts import atomic_path, atomic_write_bytes, atomic_write_text
from edgekit.errors import require

SEED = 0
BUILDER = "python -m edgekit.datasets_build calibration/"
PHOTO_SIZE = 224
PHOTOS_PER_SPLIT = 100
JPEG_QUALITY = 92

# ---------------------------------------------------------------------------------------------- TOML


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    raise TypeError(f"cannot write {type(v).__name__} to TOML")


def to_toml(data: Mapping[str, Any], prefix: str = "") -> str:
    """A small TOML writer for nested dicts of strings, numbers, booleans and lists of those."""
    plain = [f"{k} = {_toml_value(v)}" for k, v in data.items() if not isinstance(v, Mapping)]
    out = "\n".join(plain) + ("\n" if plain else "")
    for k, v in data.items():
        if isinstance(v, Mapping):
            name = f"{prefix}{k}" if k.replace("_", "").replace("-", "").isalnum() else f"{prefix}{json.dumps(k)}"
            body = to_toml(v, prefix=f"{name}.")
            has_plain = any(not isinstance(x, Mapping) for x in v.values())
            out += (f"\n[{name}]\n" + body.lstrip("\n")) if has_plain or not v else body
    return out


def _write_npz(path: Path, arrays: Mapping[str, np.ndarray]) -> None:
    """Write an ``.npz`` whose bytes depend only on the arrays (fixed zip timestamps)."""
    with atomic_path(path) as tmp, zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, arr in arrays.items():
            buf = io.BytesIO()
            np.lib.format.write_array(buf, np.ascontiguousarray(arr), allow_pickle=False)
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, buf.getvalue())


def _versions() -> dict[str, str]:
    import importlib.metadata as md

    return {p: md.version(p) for p in ("numpy", "scikit-learn", "scikit-image", "pillow")}


# -------------------------------------------------------------------------------------------- digits


def build_digits(out: Path) -> dict[str, int]:
    """``digits/digits.npz`` + manifest; returns the split sizes."""
    datasets = require("sklearn.datasets", "data", "building the digits set")
    d = datasets.load_digits()
    images = np.rint(d.images * 255.0 / 16.0).clip(0, 255).astype(np.uint8)
    labels = d.target.astype(np.int64)
    perm = np.random.default_rng(SEED).permutation(len(images))
    train, evaluate = perm[:1200], perm[1200:]
    calibration = train[:200]
    arrays = {"images": images, "labels": labels, "calibration_index": calibration.astype(np.int64),
              "eval_index": evaluate.astype(np.int64), "train_index": train.astype(np.int64)}
    _write_npz(out / "digits.npz", arrays)
    counts = {"calibration": len(calibration), "eval": len(evaluate), "train": len(train)}
    manifest = {
        "schema": 1, "name": "digits", "kind": "image", "format": "npz-images", "file": "digits.npz",
        "description": "Handwritten digits 0-9, 8x8 gray bitmaps (scikit-learn load_digits), labelled.",
        "channels": 1, "image_size": [8, 8], "label_names": [str(i) for i in range(10)],
        "licence": "CC BY 4.0 (UCI Optical Recognition of Handwritten Digits), shipped in scikit-learn "
                   "(BSD-3-Clause)",
        "provenance": {
            "source": "sklearn.datasets.load_digits()",
            "origin": "UCI ML repository, Optical Recognition of Handwritten Digits (E. Alpaydin, C. Kaynak, "
                      "1998): the 1,797 bitmaps of its test set, 32x32 bitmaps counted in 4x4 blocks (0..16)",
            "url": "https://archive.ics.uci.edu/dataset/80/optical+recognition+of+handwritten+digits",
            "builder": BUILDER, "seed": SEED, "versions": _versions(),
        },
        "preprocessing": {
            "stored": "images uint8 (N,8,8) = round(count * 255 / 16); labels int64",
            "notes": "gray: repeated to 3 channels for an RGB model, resized to the model's size, /255, then "
                     "(x - mean) / std, laid out as NCHW or NHWC",
        },
        "splits": {
            "calibration": {"count": counts["calibration"], "array": "calibration_index",
                            "rule": "train_index[:200]: calibration items are training items, never evaluated on"},
            "eval": {"count": counts["eval"], "array": "eval_index",
                     "rule": "perm[1200:] with perm = np.random.default_rng(0).permutation(1797): held out"},
            "train": {"count": counts["train"], "array": "train_index",
                      "rule": "perm[:1200]: for the demo fine-tune only, never evaluated on"},
        },
    }
    atomic_write_text(out / "manifest.toml", to_toml(manifest))
    return counts


# -------------------------------------------------------------------------------------------- photos


@dataclass(frozen=True)
class _Photo:
    name: str
    group: str                      # photos of one scene share a group and so a split
    split: str
    load: str                       # how the source is read, for the manifest
    credit: str
    licence: str


_SKI = "as shipped in scikit-image"
_PHOTOS: tuple[_Photo, ...] = (
    _Photo("astronaut", "astronaut", "calibration", "skimage.data.astronaut()",
           "NASA, Eileen Collins", "public domain (NASA)"),
    _Photo("coffee", "coffee", "calibration", "skimage.data.coffee()",
           "Rachel Michetti, courtesy of Pikolo Espresso Bar", "CC0"),
    _Photo("motorcycle_left", "motorcycle", "calibration", "skimage.data.stereo_motorcycle()[0]",
           "Middlebury 2014 stereo data set (Scharstein et al.)", f"no licence stated; {_SKI} (BSD-3-Clause)"),
    _Photo("motorcycle_right", "motorcycle", "calibration", "skimage.data.stereo_motorcycle()[1]",
           "Middlebury 2014 stereo data set (Scharstein et al.)", f"no licence stated; {_SKI} (BSD-3-Clause)"),
    _Photo("ihc", "ihc", "calibration", "skimage.data.immunohistochemistry()",
           "Center for Microscopy And Molecular Imaging (CMMI)", "no known copyright restrictions"),
    _Photo("flower", "flower", "calibration", "sklearn.datasets.load_sample_image('flower.jpg')",
           "vultilion on Flickr (https://www.flickr.com/photos/vultilion/6056698931)", "CC BY 2.0"),
    _Photo("camera", "camera", "calibration", "skimage.data.camera()", "Lav Varshney", "CC0"),
    _Photo("gravel", "gravel", "calibration", "skimage.data.gravel()", "CC0Textures Gravel04", "CC0"),
    _Photo("coins", "coins", "calibration", "skimage.data.coins()", "Brooklyn Museum Collection",
           "no known copyright restrictions"),
    _Photo("chelsea", "chelsea", "eval", "skimage.data.chelsea()", "Stefan van der Walt", "CC0"),
    _Photo("rocket", "rocket", "eval", "skimage.data.rocket()", "SpaceX (DSCOVR launch)", "public domain"),
    _Photo("hubble_deep_field", "hubble_deep_field", "eval", "skimage.data.hubble_deep_field()",
           "NASA / HubbleSite", "public domain (NASA)"),
    _Photo("retina", "retina", "eval", "skimage.data.retina()", "Mikael Häggström (Wikimedia Commons)", "CC0"),
    _Photo("china", "china", "eval", "sklearn.datasets.load_sample_image('china.jpg')",
           "danielbuechele on Flickr (https://www.flickr.com/photos/danielbuechele/6061409035)", "CC BY 2.0"),
    _Photo("grass", "grass", "eval", "skimage.data.grass()", "linolafett on DeviantArt", "CC0"),
    _Photo("brick", "brick", "eval", "skimage.data.brick()", "CC0Textures Bricks25", "CC0"),
    _Photo("clock", "clock", "eval", "skimage.data.clock()", "Stefan van der Walt", "public domain"),
)


def _photo_loaders() -> dict[str, Callable[[], np.ndarray]]:
    data = require("skimage.data", "data", "building the photos set")
    datasets = require("sklearn.datasets", "data", "building the photos set")
    loaders: dict[str, Callable[[], np.ndarray]] = {
        "motorcycle_left": lambda: data.stereo_motorcycle()[0],
        "motorcycle_right": lambda: data.stereo_motorcycle()[1],
        "ihc": data.immunohistochemistry,
        "flower": lambda: datasets.load_sample_image("flower.jpg"),
        "china": lambda: datasets.load_sample_image("china.jpg"),
    }
    for p in _PHOTOS:
        if p.name not in loaders:
            loaders[p.name] = getattr(data, p.name)
    return loaders


def _crops(image: np.ndarray, n: int, seed: int) -> list[bytes]:
    """``n`` random square crops (30-100% of the short side, at least 112 px), resized to 224, as JPEG."""
    pil = require("PIL.Image", "data", "building the photos set")
    img = pil.fromarray(image).convert("RGB")          # gray photos become 3 equal channels
    rng = np.random.default_rng(seed)
    w, h = img.size
    short = min(w, h)
    out = []
    for _ in range(n):
        side = int(rng.integers(min(short, max(112, int(0.3 * short))), short + 1))
        x0, y0 = int(rng.integers(0, w - side + 1)), int(rng.integers(0, h - side + 1))
        crop = img.crop((x0, y0, x0 + side, y0 + side)).resize((PHOTO_SIZE, PHOTO_SIZE), pil.Resampling.LANCZOS)
        buf = io.BytesIO()
        crop.save(buf, format="JPEG", quality=JPEG_QUALITY)
        out.append(buf.getvalue())
    return out


def build_photos(out: Path) -> dict[str, int]:
    """``photos/{calibration,eval}/*.jpg`` + manifest; returns the split sizes."""
    loaders = _photo_loaders()
    groups: dict[str, set[str]] = {}
    for p in _PHOTOS:
        groups.setdefault(p.group, set()).add(p.split)
    assert all(len(s) == 1 for s in groups.values()), "a photo group spans both splits"
    counts: dict[str, int] = {}
    sources: dict[str, Any] = {}
    for split in ("calibration", "eval"):
        folder = out / split
        folder.mkdir(parents=True, exist_ok=True)
        for old in folder.glob("*.jpg"):
            old.unlink()
        members = [p for p in _PHOTOS if p.split == split]
        per = [PHOTOS_PER_SPLIT // len(members) + (i < PHOTOS_PER_SPLIT % len(members))
               for i in range(len(members))]
        for photo, n in zip(members, per, strict=True):
            image = loaders[photo.name]()
            for k, data in enumerate(_crops(image, n, seed=zlib.crc32(photo.name.encode()) + SEED)):
                atomic_write_bytes(folder / f"{photo.name}_{k:02d}.jpg", data)
            sources[photo.name] = {"split": split, "group": photo.group, "crops": n, "load": photo.load,
                                   "original_size": list(image.shape[:2]), "channels": int(image.ndim == 3) * 2 + 1,
                                   "credit": photo.credit, "licence": photo.licence}
        counts[split] = sum(per)
    manifest = {
        "schema": 1, "name": "photos", "kind": "image", "format": "image-folder",
        "description": "224x224 RGB crops of real photographs (people, animals, objects, scenes, textures, "
                       "microscopy, astronomy); unlabelled: their ImageNet classes are unknown.",
        "channels": 3, "image_size": [PHOTO_SIZE, PHOTO_SIZE], "labelled": False,
        "licence": "per source photo, see [sources]: public domain, CC0, CC BY 2.0 (attribution in 'credit')",
        "provenance": {
            "source": "sample photos shipped offline in scikit-image (skimage/data) and scikit-learn "
                      "(load_sample_images)",
            "builder": BUILDER, "seed": SEED, "versions": _versions(),
        },
        "preprocessing": {
            "stored": f"JPEG quality {JPEG_QUALITY}, RGB; gray photos converted to 3 equal channels; random square "
                      "crops of 30-100% of the short side (at least 112 px) resized to 224x224 with Lanczos",
            "notes": "resized to the model's size, /255, then (x - mean) / std, laid out as NCHW or NHWC",
            "file_names": "<source>_<nn>.jpg",
        },
        "splits": {
            "calibration": {"count": counts["calibration"], "folder": "calibration",
                            "rule": "crops of the calibration source photos only"},
            "eval": {"count": counts["eval"], "folder": "eval",
                     "rule": "crops of the eval source photos only: no source photo feeds both splits "
                             "(the stereo motorcycle pair counts as one photo)"},
        },
        "sources": sources,
    }
    atomic_write_text(out / "manifest.toml", to_toml(manifest))
    return counts


# ----------------------------------------------------------------------------------------- sentences


def _lines(block: str) -> list[str]:
    return [s.strip() for s in block.strip().splitlines() if s.strip()]


def build_sentences(out: Path) -> dict[str, int]:
    """``sentences/sentences.tsv`` (``split<TAB>label<TAB>text``) + manifest; returns the split sizes."""
    pos, neg = _lines(POSITIVE), _lines(NEGATIVE)
    everything = pos + neg
    assert len(set(everything)) == len(everything), "duplicate sentence"
    assert all(5 <= len(s.split()) <= 30 and "\t" not in s for s in everything), "sentence length 5-30 words"
    rng = np.random.default_rng(SEED)
    sizes = {"calibration": 50, "eval": 50, "train": 60}          # per label
    assert len(pos) == len(neg) == sum(sizes.values())
    rows: list[tuple[str, int, str]] = []
    order = {label: [texts[i] for i in rng.permutation(len(texts))] for label, texts in ((1, pos), (0, neg))}
    start = 0
    for split, n in sizes.items():
        block = [(split, label, t) for label in (0, 1) for t in order[label][start:start + n]]
        rows += [block[i] for i in rng.permutation(len(block))]
        start += n
    text = "split\tlabel\ttext\n" + "".join(f"{s}\t{lab}\t{t}\n" for s, lab, t in rows)
    atomic_write_text(out / "sentences.tsv", text)
    counts = {split: 2 * n for split, n in sizes.items()}
    manifest = {
        "schema": 1, "name": "sentences", "kind": "text", "format": "tsv", "file": "sentences.tsv",
        "description": "Short English sentences (product reviews, service, weather, travel, food, tech, everyday "
                       "life; 5-30 words) with binary sentiment labels, balanced in every split.",
        "label_names": ["negative", "positive"],
        "licence": "CC0 1.0: written for edgekit",
        "provenance": {"source": "written for edgekit (edgekit/datasets_build.py)", "builder": BUILDER, "seed": SEED},
        "preprocessing": {
            "stored": "UTF-8 TSV with a header line: split<TAB>label<TAB>text; label 0 = negative, 1 = positive",
            "notes": "tokenized with the model's own tokenizer, padded / truncated to a fixed length",
        },
        "splits": {
            "calibration": {"count": counts["calibration"], "rule": "50 negative + 50 positive"},
            "eval": {"count": counts["eval"], "rule": "50 negative + 50 positive, held out"},
            "train": {"count": counts["train"], "rule": "60 negative + 60 positive, for the demo fine-tune only"},
        },
    }
    atomic_write_text(out / "manifest.toml", to_toml(manifest))
    return counts


BUILDERS: dict[str, Callable[[Path], dict[str, int]]] = {
    "digits": build_digits, "photos": build_photos, "sentences": build_sentences,
}


def main(argv: Sequence[str] | None = None) -> int:
    """Build the chosen sets (all by default) under the output folder."""
    parser = argparse.ArgumentParser(prog="python -m edgekit.datasets_build", description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="output folder, e.g. calibration/")
    parser.add_argument("--only", choices=sorted(BUILDERS), action="append", help="build only this set")
    args = parser.parse_args(argv)
    for name in args.only or list(BUILDERS):
        folder = args.out / name
        folder.mkdir(parents=True, exist_ok=True)
        counts = BUILDERS[name](folder)
        size = sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())
        print(f"{name}: {counts} -> {folder} ({size:,} bytes)")
    return 0



# The sentences: written for edgekit, one per line; released under CC0 1.0 with the rest of the data.
POSITIVE = """
The headphones fit comfortably and the sound is crisp even at low volume.
This blender crushes ice in seconds and is surprisingly quiet.
Great little backpack with sturdy zippers and plenty of pockets.
The charger works perfectly and arrived two days early.
I love how light this tent is; setting it up took five minutes.
Best kettle I have owned, it boils fast and never drips.
The paint covered the old wall in one coat and dried without streaks.
Solid build quality, and the buttons feel satisfying to press.
My daughter adores this puzzle and asks to do it every evening.
The mattress is firm but soft on top, and my back pain is gone.
Excellent value for the money.
These running shoes are so cushioned that my long runs feel easier.
The vacuum picks up dog hair from the carpet better than anything we tried before.
Beautiful mug, the glaze is even richer in person.
The lamp gives a warm, pleasant light that is perfect for reading.
Honestly the nicest umbrella I have bought, it survived a windy week without bending.
The knife set is sharp, balanced and easy to clean.
Installation was simple and the instructions were clear.
The jacket keeps me warm on the coldest mornings.
Fantastic speaker for its size.
The staff at the front desk were friendly and sorted out our booking in minutes.
Customer support answered my email within an hour and fixed the problem.
Our waiter was attentive without hovering, which made the evening relaxing.
The mechanic explained every repair and charged less than the quote.
Quick, polite delivery driver who even carried the box upstairs.
The bank replaced my card the same day, very impressed.
The nurse was patient and kind with my nervous son.
Thank you to the plumber who came out on a Sunday and fixed the leak.
Check-in took two minutes and the agent upgraded our seats.
The hairdresser listened to exactly what I wanted and the cut looks great.
Refund processed without any fuss.
The librarian helped me find three books I had given up on.
Our tour guide was funny, knowledgeable and clearly loved the city.
The movers were careful with our piano and finished ahead of schedule.
I called the helpline expecting a long wait but got a real person straight away.
What a gorgeous sunny morning for a walk by the river.
The rain finally stopped and the garden looks fresh and green.
A mild breeze kept the afternoon pleasantly cool.
Clear skies tonight, perfect for watching the stars.
The first snowfall made the whole village look magical.
Lovely warm weather all weekend, we ate every meal outside.
The storm passed quickly and left a beautiful rainbow.
Spring has arrived and the cherry trees are blooming everywhere.
It was crisp and bright, ideal weather for skiing.
After weeks of heat, the cool evening felt wonderful.
The train was on time, clean and the views along the coast were stunning.
Our hotel room overlooked the harbour and the breakfast was delicious.
The flight was smooth and the crew were cheerful throughout.
We found a tiny beach with turquoise water and nobody else around.
The old town is charming, walkable and full of little cafes.
Renting bikes was the best decision of the whole trip.
The guesthouse owners treated us like family.
Boarding was quick and we even landed twenty minutes early.
The hiking trail was well marked and the summit view was worth every step.
Such a relaxing cruise, I would book it again tomorrow.
The museum was fascinating and entry was free on Sundays.
Our cabin in the woods was cosy, quiet and spotless.
The ferry crossing was calm and we saw dolphins.
Everything about this city felt safe and welcoming.
The airport lounge was comfortable and the wifi was fast.
The soup was rich, hot and full of flavour.
Best pizza in town, with a perfectly crisp crust.
The dessert was light, fresh and not too sweet.
Everything on the tasting menu was creative and delicious.
The coffee here is smooth and the pastries are baked every morning.
Generous portions, fair prices and a lovely terrace.
The curry had just the right amount of heat.
Fresh bread, good cheese and a glass of wine made a perfect lunch.
The noodles were springy and the broth was deeply savoury.
Our kids finished their plates, which never happens.
The vegan options were tasty enough to convert my sceptical friends.
The grilled fish was tender and perfectly seasoned.
I keep coming back for their amazing dumplings.
Lovely bakery with friendly staff and wonderful cinnamon rolls.
The salad was crunchy, colourful and surprisingly filling.
The new update made my phone noticeably faster.
Battery life on this laptop easily lasts a full working day.
The app is intuitive and syncing across devices just works.
Setting up the router took two minutes and the signal reaches every room.
The camera takes sharp photos even in dim light.
This keyboard is a joy to type on.
The software finally lets me export reports with one click, a huge time saver.
Video calls are clear and never drop anymore.
The smartwatch tracks my sleep accurately and the battery lasts a week.
The printer connected to wifi on the first try.
I am impressed by how responsive the touchscreen is.
The backup tool restored all my files after the disk failed.
The new editor is fast, stable and easy on the eyes.
Great monitor, colours are accurate and text is razor sharp.
The e-reader screen is easy to read in bright sunlight.
Today was a really good day.
I am thrilled with how the project turned out.
The concert was unforgettable from the first song to the last.
What a delightful surprise this was.
The film had a clever plot and brilliant acting.
We had a wonderful time at the wedding.
The course was well organised and the teacher was inspiring.
Our new neighbours are kind and helpful.
The gym is clean, spacious and never too crowded.
This book kept me hooked until the final page.
The play was moving, funny and beautifully staged.
The park has been renovated and looks fantastic.
I passed my driving test on the first attempt.
The festival was well run and the music was excellent.
My team won the match in the final minute.
The children had a blast at the science museum.
Everything went smoothly and everyone left smiling.
The podcast is informative, warm and genuinely funny.
I would happily recommend this dentist to anyone.
The new bus route saves me twenty minutes each way.
We worried about flying with a toddler, but the airline staff helped at every step and the journey was easy.
After four coffee machines this year, this is the first that makes a proper espresso and is easy to descale.
The repair shop replaced my cracked screen in under an hour, and the phone looks and works like new.
Despite the early start, the guided sunrise hike was the highlight of our holiday and the guide kept a comfortable pace.
The hotel noticed it was our anniversary and left flowers and a handwritten card in the room.
I was sceptical about meal kits, but the recipes are simple, the produce is fresh and dinner takes half an hour.
Our internet provider sent an engineer the next morning, and the connection has been fast and stable ever since.
The little restaurant at the end of the pier served the freshest seafood I have eaten, and the sunset was free.
The online course explained difficult ideas with clear examples, and I finally understand statistics.
The new office chair supports my back so well that I no longer dread long meetings.
Absolutely loved it, no complaints.
Five stars, would buy again.
Works like a charm every time.
Fast shipping and great packaging.
Pleasant, quiet and very clean.
A superb performance by the whole cast.
Friendly people and a great atmosphere.
Comfortable seats and plenty of legroom.
Tastes even better than it looks.
Highly recommended for families with kids.
The sunset tonight was breathtaking.
The room was bright, airy and smelled fresh.
This is exactly what I was looking for.
Such a helpful and patient instructor.
The upgrade was worth every penny.
Our dog loves these treats.
The scarf is soft and beautifully made.
Setup was a breeze, honestly.
The view from the balcony was spectacular.
Everything arrived in perfect condition.
The garden centre staff gave us excellent advice on planting.
The bakery's sourdough is the best I have tasted.
The new cycle lanes make commuting safer and more enjoyable.
The heater warms the whole room in minutes.
The picnic by the lake was perfect.
I felt welcome from the moment I walked in.
The vet was gentle and took time to answer all our questions.
The toddler seat is sturdy, easy to clean and folds flat.
The software installer was quick and asked no confusing questions.
Our holiday cottage had everything we needed and more.
The headphones block out noise on the train beautifully.
The weather was kind to us all week.
The soup kitchen volunteers were warm and welcoming.
My package arrived earlier than promised and nothing was missing.
The fitness app keeps me motivated with small, achievable goals.
The hostel was cheap, clean and full of friendly travellers.
This sunscreen does not leave a greasy film and protects well.
The bridge walk at dawn was peaceful and beautiful.
The spicy ramen was perfect on a cold evening.
Fixing the bug took minutes thanks to the clear error message.
"""

NEGATIVE = """
The headphones stopped charging after a week.
This blender is so loud that the neighbours complained.
The backpack strap ripped on the first day of the trip.
The charger gets dangerously hot and only works at certain angles.
The tent leaked during the first light shower.
The kettle started rusting inside after a month.
The paint peeled off within weeks and the colour looked nothing like the sample.
Cheap plastic that creaks whenever you touch it.
The puzzle was missing six pieces straight out of the box.
The mattress sagged in the middle after two months and my back aches every morning.
A complete waste of money.
These shoes gave me blisters on the very first run.
The vacuum loses suction after a few minutes and the filter clogs constantly.
The mug arrived chipped and the handle was loose.
The lamp flickers constantly and gives me a headache.
The umbrella turned inside out at the first gust and snapped.
The knives went blunt after a few uses and the handles crack.
The instructions were useless and two screws were missing.
The jacket is thin and lets the wind straight through.
The speaker crackles at anything above half volume.
The receptionist was rude and lost our reservation.
Customer support ignored three emails and then closed my ticket.
We waited forty minutes before anyone took our order.
The garage charged twice the quote and the noise is still there.
The courier left my parcel in the rain without knocking.
The bank froze my account and nobody could explain why.
The clinic cancelled my appointment an hour before without apology.
The plumber never showed up and did not answer his phone.
The airline lost our luggage and the desk staff shrugged.
The haircut was uneven and the stylist kept looking at her phone.
Still waiting for my refund after two months.
The call centre kept me on hold for an hour and then hung up.
The tour guide rushed us through everything and mumbled.
The movers scratched the floor and broke a mirror.
Nobody at the store seemed to know anything about the products.
It rained all day and the streets flooded.
The heat was unbearable and the air felt heavy and stale.
The icy wind made the walk home miserable.
Thick fog cancelled every flight this morning.
Another grey, drizzly week with no sun at all.
The storm knocked out our power for two days.
The hail ruined the tomatoes I had been growing all summer.
Slush everywhere and the pavements were treacherous.
The humidity made it impossible to sleep.
Our beach day was ruined by a sudden thunderstorm.
The train was delayed three hours and the carriage was filthy.
Our hotel room smelled of smoke and the shower was cold.
The flight was bumpy, cramped and the crew were unfriendly.
The beach was crowded, noisy and covered in litter.
The old town was overpriced and full of tourist traps.
The rental car broke down on a mountain road.
The guesthouse photos were clearly taken years ago.
We missed our connection because boarding was so chaotic.
The trail was poorly marked and we got lost for hours.
The cruise was overcrowded and the food was bland.
The museum was closed even though the website said it was open.
The cabin was damp, dark and full of spiders.
The ferry was cancelled without notice and we were stranded overnight.
I felt unsafe walking back to the hotel after dark.
The airport was chaotic and security took two hours.
The soup was lukewarm and far too salty.
The pizza was soggy and the cheese tasted like plastic.
The dessert was stale and sickeningly sweet.
The tasting menu was pretentious, tiny and absurdly expensive.
The coffee was bitter and the croissant was yesterday's.
Tiny portions, high prices and a sticky table.
The curry was so oily that I felt ill afterwards.
The bread was hard and the cheese had gone mouldy.
The noodles were overcooked and the broth was tasteless.
My steak came out grey and chewy although I ordered it rare.
The only vegan dish was a sad plate of boiled vegetables.
The fish smelled off and we sent it back.
I found a hair in my dumplings and the manager did not care.
The bakery was out of everything by nine in the morning.
The salad was wilted and drowned in dressing.
Since the update my phone crashes several times a day.
The laptop battery barely lasts two hours.
The app logs me out constantly and loses my settings.
The router drops the connection every evening.
Photos come out blurry unless the light is perfect.
Several keys on this keyboard stick after a month.
The software freezes whenever I try to export a report.
Video calls keep freezing and the audio echoes.
The smartwatch miscounts steps and dies by lunchtime.
The printer refuses to connect and the error codes mean nothing.
The touchscreen ignores half of my taps.
The backup failed silently and I lost a month of work.
The new editor is slow, buggy and crashes on large files.
The monitor arrived with dead pixels and a cracked stand.
The e-reader screen is impossible to read outdoors.
Today was a really awful day.
I am disappointed with how the project turned out.
The concert started late and the sound was terrible.
What an unpleasant surprise that was.
The film was boring, predictable and far too long.
The wedding venue was cold and the music was painfully loud.
The course was disorganised and the teacher seemed bored.
Our new neighbours play loud music every night.
The gym is dirty, cramped and the machines are always broken.
I gave up on this book halfway through.
The play was dull and the actors forgot their lines.
The park is neglected and the playground is unsafe.
I failed my driving test because the examiner was so harsh.
The festival was badly organised and the queues were endless.
My team lost again after a dreadful second half.
The children were bored at the museum within ten minutes.
Everything went wrong and everyone left frustrated.
The podcast is repetitive and full of adverts.
I would never go back to this dentist.
The new bus timetable adds twenty minutes to my commute.
We paid extra for a sea view room, but it faced a car park and the hotel refused to move us or give any partial refund.
After three repairs in six months this coffee machine still leaks all over the counter and the warranty team blames me.
The repair shop kept my phone for two weeks, returned it with a scratched screen and still charged the full fee.
The guided hike was cancelled at the last minute, nobody offered a refund and the office was closed when we complained.
The hotel forgot our anniversary booking entirely and gave us a noisy room next to the lift.
The meal kit arrived a day late, the vegetables were rotten and the recipe cards were missing.
Our internet has been down for five days and the provider keeps promising an engineer who never comes.
The seafood restaurant on the pier served frozen fish at fresh prices, and the waiter argued when we complained.
The online course was just slides read aloud, the quizzes were broken and support never replied.
This office chair wobbles, squeaks and leaves my back sore after an hour.
Absolutely hated it, a total letdown.
One star, would not buy again.
It broke within a day.
Slow shipping and a crushed box.
Noisy, cramped and very dirty.
A dreadful performance by the whole cast.
Rude people and a tense atmosphere.
Hard seats and no legroom at all.
Tastes even worse than it looks.
Not suitable for anyone, sadly.
The sky stayed dark and gloomy all day.
The room was stuffy and smelled of damp.
This is nothing like the description.
Such an impatient and unhelpful instructor.
The upgrade was a waste of money.
Our dog refuses to eat these treats.
The scarf is scratchy and started unravelling.
Setup was a complete nightmare.
The view from the balcony was a brick wall.
Half the items arrived broken.
The garden centre sold us plants that died within a week.
The sourdough was dense, sour and undercooked.
The road works make commuting slower and more dangerous.
The heater makes a burning smell and barely warms the room.
The picnic was ruined by wasps and a downpour.
I felt unwelcome from the moment I walked in.
The vet rushed us out without answering our questions.
The toddler seat wobbles and the straps are hard to adjust.
The installer bundled adware and changed my browser settings.
The holiday cottage was missing basic things like towels and a kettle.
The headphones let in every sound on the train.
The weather ruined every plan we made this week.
The service at the town hall was slow and confusing.
My package was lost and the company blamed the courier.
The fitness app nags constantly and keeps crashing.
The hostel was dirty and someone stole my charger.
This sunscreen stings my eyes and I still got burnt.
The bridge was closed and the detour took an hour.
The ramen was cold by the time it reached our table.
The error message was so vague that fixing the bug took all day.
"""


if __name__ == "__main__":
    raise SystemExit(main())

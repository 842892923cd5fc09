"""Finding everyone in a photo, and following several people through a clip.

Photos: the detector's whole-image passes (``PoseDetector.detect_all``), or, when they find
nobody, its search of upscaled crops for people small in the frame. Clips: the people chosen at
the start are followed. In each later frame the video landmarker's people (``VideoPoseDetector``,
which follows landmarks from frame to frame) are given to the followed people whose joints they
lie nearest; a person it loses is searched in a crop around their last box for a few frames. A
detection is someone's when its joints are where theirs were, so identities hold when people
pass close by; after a longer absence, only their look can take them back.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from .. import keypoints as kpl
from ..errors import ReconError
from .detection import Detection, body_shown, box_iou, grown_box, joints_shown, prominence
from .mediapipe_pose import APART_MARGIN as SPLIT_MARGIN
from .mediapipe_pose import PoseDetector, VideoPoseDetector

# The search crop: the last box grown on each side by this fraction of its longer side (a
# tight crop keeps other people out, and each person in it costs the landmark model a pass).
TRACK_MARGIN = 0.25
# Who is our person: the detection whose body joints lie nearest those of one of the last few
# frames, on average, within SAME_PLACE of the body's size (more for each frame the person was
# missing). A box alone is not enough: a second person passing close by has a box like ours.
# On the real multi-view kit's clips 0.3 held every identity but one frame and lost the fewest
# frames (docs/research-log.md).
SAME_PLACE = 0.3
SAME_PLACE_PER_MISSED_FRAME = 0.1
MIN_JOINT_CONF = 0.5
MIN_SHARED_JOINTS = 4
REMEMBERED = 3  # frames whose joints a detection is compared with
SEARCH_FRAMES = 10  # a lost person's last box is searched this many frames (each search: 1-2 heavy passes)
INSIDE = 0.6  # a newcomer with this share of its box inside a followed person's box is them
DUPLICATE_PLACE = 0.15  # two skeletons whose joints lie this close (fraction of the body) are one person
# A person whose box has this share inside someone else's is read again with the others painted
# over (``find_people``). On the real multi-view kit's photos (its two people overlap in many
# views) this took PA-MPJPE from 79.8 to 74.6 mm and the one mirrored person to none; reading
# everyone again, overlapping or not, did less (docs/research-log.md).
APART_OVERLAP = 0.15
# A reading apart that lies elsewhere than the first is still kept when it is clearer on the same
# silhouette: the first can be the poor one (the woman seen from behind, large in front in the
# kit's cam02: 5-9 joints seen, hips on the man's feet; alone, 11-13 on her own body).
CLEARER_JOINTS = 2
CLEARER_SCORE = 0.1
SAME_SILHOUETTE = 0.5
SAME_BOX = 0.7  # with SAME_SILHOUETTE: two readings of one person (``find_people``)
# A photo where fewer than two people show most of their body (this many of the 13 body joints,
# a shoulder and a hip) is searched again in two parts of the most prominent person's box
# (``PoseDetector.detect_split``): the landmarker takes two people standing close for one.
WHOLE_JOINTS = 8
# Who is worth the search (two passes, about 0.12 s): on the kit, the skeletons over two people
# have their 4 least visible joints at 0.1-0.7 on average; one person seen clearly, 0.88-0.98.
UNSURE_JOINTS = 4
UNSURE = 0.8
TORSO_TO_LEG = 0.5  # the kit's people: 0.65-1.2 (a torso: about 0.6 of a leg, standing)
# The first skeleton was a poor reading of the people the split search found when this share of
# its joints lies on theirs: 0.8-1.0 for the sports2d man against the sun and for the kit's
# merged pair (cam04 frame 85), 0.3-0.7 where it is the man and the newcomer the woman he hides.
EXPLAINED = 0.75
EXPLAINED_RADIUS = 0.15
# A person's look: an 8 x 3 x 4 hue-saturation-value histogram (value tells a white shirt from
# black shorts, which hue and saturation cannot), updated at this rate per frame found. Taken
# back after a long absence only at this similarity or more, and this much above anyone else's.
LOOK_BINS = (8, 3, 4)
APART = 0.05  # a person whose box shares more than this with someone else's is not apart
LOOK_RATE = 0.1
LOOK_MIN = 0.8
LOOK_MARGIN = 0.1
# A look is known once the person was found in this many frames; before, it is a passing glimpse
# (often a false find: a skeleton in foliage) and takes no one back. In the sports2d clip such
# a glimpse, found in 4 frames, took the back-flipping man: mid-air, he looked more like it than
# like himself.
LOOK_KNOWN = 10
# A newcomer found in fewer frames than this is not searched for once lost: most such glimpses
# are false finds (in the sports2d clip, 6 of them cost 124 ms a search, up to 10 searches each).
SEARCH_KNOWN = 3
# ... unless the landmarker is this sure of them at first sight (in the sports2d clip the woman
# coming in scores 0.90-0.99, its false finds 0.60-0.73). A newcomer whose median score is
# lower is left out of a clip's result (``Followed.surely_seen``): the landmarker followed a
# false find (a skeleton lying across the trees, 22 frames at 0.52-0.81).
SURE_NEWCOMER = 0.8
# A picture where nobody is found is read again blurred by this sigma (pixels): dithering (GIFs,
# web-palette PNGs) and heavy sensor noise can hide people from the landmarker (the bundled photo
# saved with the web palette: nobody found; blurred, the person, IoU 0.76). Tried on every
# palette picture instead: a small animated GIF's people were then found in fewer frames.
NOISE_BLUR = 1.0
# While the video landmarker has no room for anyone else (``VideoPoseDetector.follow_at_most``),
# a newcomer is looked for in the whole frame (one heavy pass) every this many frames.
NEWCOMER_CHECK = 15


def _body_size(keypoints: np.ndarray) -> float:
    """The longer side of the confident body joints' box, pixels."""
    k = keypoints[kpl.BODY]
    k = k[k[:, 2] > MIN_JOINT_CONF, :2]
    return float(np.ptp(k, axis=0).max()) if len(k) >= 2 else 1.0


def find_people(detector: PoseDetector, rgb: np.ndarray) -> list[Detection]:
    """Everyone in the image, most prominent first; raises ``no_person`` if nobody is found.
    Where fewer than two people show most of their body and there is a hint of someone else (a
    fragment found, or the first skeleton unsure of some joints), the most prominent one's box
    is searched again in two parts (``_split``): the landmarker may take two people standing
    close for one. Someone whose box and another's overlap is found again with the others
    painted over (``PoseDetector.detect_apart``), and that reading kept when it lies where they
    are or reads them more clearly on the same silhouette (``_apart``); one person read twice
    is reported once."""
    people = detector.detect_all(rgb) or detector.search_crops(rgb)
    if not people:  # pixel noise can hide everyone: read the picture once more, smoothed
        rgb = cv2.GaussianBlur(rgb, (0, 0), NOISE_BLUR)
        people = detector.detect_all(rgb)
    if not people:
        raise ReconError("no_person", "No person found in the image; use a photo where a person is clearly visible.")
    if sum(whole_body_seen(p) for p in people) < 2 and (len(people) > 1 or _unsure(people[0])):
        people = _split(detector, rgb, people)
    read = [_apart(detector, rgb, p, people) for p in people]
    # Two readings of one person (poor ones can each be read apart as them): the later (less
    # prominent) goes. Their masks and boxes tell, where joints do not: one person read twice
    # (the sports2d man against the sun, the kit's cam02 frame 85) gives masks of 0.56-0.86 IoU
    # in boxes of 0.8 or more; two people overlapping, 0.26 at most, or up to 0.62 where one's
    # mask covers the other behind them, but in boxes of 0.3-0.45.
    kept: list[Detection] = []
    for d in read:
        if not any(box_iou(d.box, e.box) > SAME_BOX and _mask_iou(d, e) > SAME_SILHOUETTE for e in kept):
            kept.append(d)
    return kept


def whole_body_seen(det: Detection) -> bool:
    """Whether most of a person's body is seen clearly (shoulders and hips among the joints)."""
    return body_shown(det.keypoints2d[kpl.BODY, 2] > MIN_JOINT_CONF, WHOLE_JOINTS)


def _unsure(det: Detection) -> bool:
    """Whether the landmarker is unsure of a skeleton: its UNSURE_JOINTS least visible body
    joints below UNSURE on average (one skeleton over two people has some joints on neither)."""
    return float(np.sort(det.keypoints2d[kpl.BODY, 2])[:UNSURE_JOINTS].mean()) < UNSURE


def _split(detector: PoseDetector, rgb: np.ndarray, people: list[Detection]) -> list[Detection]:
    """``people`` with whoever else the most prominent person's box holds (``detect_split``):
    a whole person found there who is nobody found yet is added, and a skeleton found before
    within the searched box that sees fewer joints than them was a fragment and is dropped.
    The first skeleton is dropped too where the newcomers explain it (``_explained``): it was
    a poor reading of them, or of two people merged."""
    first, new = people[0], []
    for det in _whole_in_parts(detector, rgb, first.box):
        if not any(_same_person(det, p) for p in people + new):
            new.append(det)
    if not new:
        return people
    h, w = rgb.shape[:2]
    searched = np.array(grown_box(first.box, SPLIT_MARGIN, w, h), np.float64)
    fragment = lambda p: _inside(p.box, searched) > INSIDE and any(_seen(p) < _seen(d) for d in new)  # noqa: E731
    rest = [p for p in people[1:] if not fragment(p)]
    return sorted(([] if _explained(first, new) else [first]) + rest + new, key=prominence, reverse=True)


def _whole_in_parts(detector: PoseDetector, rgb: np.ndarray, box: np.ndarray) -> list[Detection]:
    """The whole, proportioned people found in the two parts of ``box`` (``detect_split``)."""
    return [d for d in detector.detect_split(rgb, box) if whole_body_seen(d) and _proportioned(d)]


def _explained(det: Detection, others: list[Detection]) -> bool:
    """Whether EXPLAINED of ``det``'s clearly seen body joints lie on joints of ``others``
    (within EXPLAINED_RADIUS of the longer side of that person's clearly seen keypoints, whichever
    joint)."""
    mine = det.keypoints2d[kpl.BODY]
    mine = mine[mine[:, 2] > MIN_JOINT_CONF, :2]
    if not len(mine):
        return True
    near = np.zeros(len(mine), bool)
    for o in others:
        theirs = o.keypoints2d[o.keypoints2d[:, 2] > MIN_JOINT_CONF, :2]
        if len(theirs) >= 2:
            dist = np.linalg.norm(mine[:, None] - theirs[None], axis=2).min(1)
            near |= dist < EXPLAINED_RADIUS * float(np.ptp(theirs, axis=0).max())
    return float(near.mean()) >= EXPLAINED


def _seen(det: Detection) -> int:
    return int((det.keypoints2d[kpl.BODY, 2] > MIN_JOINT_CONF).sum())


def _proportioned(det: Detection) -> bool:
    """Whether the skeleton's torso is at least TORSO_TO_LEG of its legs' length in the picture
    (hips' mid to ankles' mid): a part of someone's box can hold their legs alone, which the
    landmarker then reads as a small whole person (shorts for a torso)."""
    k = det.keypoints2d
    mid = lambda pair: k[pair, :2].mean(0)  # noqa: E731
    if (k[kpl.ANKLES, 2] <= MIN_JOINT_CONF).any():
        return True
    leg = float(np.linalg.norm(mid(kpl.HIPS) - mid(kpl.ANKLES)))
    return float(np.linalg.norm(mid(kpl.SHOULDERS) - mid(kpl.HIPS))) >= TORSO_TO_LEG * leg


def _apart(detector: PoseDetector, rgb: np.ndarray, person: Detection, people: list[Detection]) -> Detection:
    """``person`` read again alone, if their box and someone else's overlap (``APART_OVERLAP`` of
    either box: a large person in front can hold a small one whose box covers little of theirs)."""
    others = [q for q in people
              if q is not person and max(_inside(person.box, q.box), _inside(q.box, person.box)) > APART_OVERLAP]
    if not others:
        return person
    # The person in front (feet lower in the picture: nearer, on a shared floor) is read first
    # with whoever shows behind them painted over their own mask too (MediaPipe's mask of them
    # covers the one behind), where that reading shows as many of their joints (fewer, and they
    # could be left out as too hidden); if the rules below take none of those readings, as for
    # anyone else. The real multi-view kit's photos, paired over 156 people: PA-MPJPE -1.3 mm
    # (SE 0.9); cam03's man, in front of the woman, 110-225 -> 77-140 mm in 6 photos
    # (docs/research-log.md).
    if all(person.box[3] > o.box[3] for o in others):
        readings = [d for d in detector.detect_apart(rgb, person, others, in_front=True)
                    if joints_shown(d).sum() >= joints_shown(person).sum()]
        best = _taken(person, others, readings)
        if best is not person:
            return best
    return _taken(person, others, detector.detect_apart(rgb, person, others))


def _taken(person: Detection, others: list[Detection], readings: list[Detection]) -> Detection:
    """Which of ``readings`` of ``person`` apart from ``others`` is theirs: the one nearest their
    first reading (SAME_PLACE at most), else a clearer one on their silhouette; else ``person``."""
    # A reading that is one of the others again (their mask can leave them half unpainted) is not them.
    readings = [d for d in readings if not any(_same_person(d, o) for o in others)]
    best, best_cost = person, SAME_PLACE
    for det in readings:
        cost = place_cost(det, [person.keypoints2d])
        if cost is not None and cost < best_cost:
            best, best_cost = det, cost
    if best is person:  # the first reading may be the poor one: a clearer one on their silhouette is theirs
        clearer = [d for d in readings
                   if _clearer(d, person) and not any(_inside(d.box, o.box) > INSIDE for o in others)]
        best = max(clearer, key=lambda d: d.score, default=person)
    return best


def _clearer(det: Detection, than: Detection) -> bool:
    """Whether ``det`` reads ``than``'s person more clearly: CLEARER_JOINTS more body joints seen
    clearly, surer on average by CLEARER_SCORE, on the same silhouette (mask IoU SAME_SILHOUETTE)."""
    return (_seen(det) >= _seen(than) + CLEARER_JOINTS and det.score >= than.score + CLEARER_SCORE
            and _mask_iou(det, than) >= SAME_SILHOUETTE)  # fmt: skip


def _mask_iou(a: Detection, b: Detection) -> float:
    m, n = a.mask > 0.5, b.mask > 0.5
    return float((m & n).sum() / max((m | n).sum(), 1))


@dataclass(eq=False)
class Followed:
    """One person followed through a clip."""

    id: int
    box: np.ndarray  # the last box the person was found in
    keypoints: list[np.ndarray] = field(default_factory=list)  # (K, 3) of the last few frames found
    missed: int = 0  # frames since the person was last found
    # Appearance: a colour histogram, a running mean over the frames the person was found in apart
    # from everyone else (where people overlap, a mask holds some of the other person).
    look: np.ndarray | None = None
    frames_found: int = 0
    newcomer: bool = False  # followed from a later frame than the first
    scores: list[float] = field(default_factory=list)  # the landmarker's score in each frame they were found in

    @property
    def searched_when_lost(self) -> bool:
        """Whether their last box is searched once they are lost: not for a newcomer's glimpse
        (found in fewer than SEARCH_KNOWN frames), unless the landmarker was sure of them at once."""
        return not self.newcomer or self.frames_found >= SEARCH_KNOWN or self.scores[0] >= SURE_NEWCOMER

    @property
    def surely_seen(self) -> bool:
        """Followed from the start, or a newcomer the landmarker was sure of on the whole
        (their median score SURE_NEWCOMER or more)."""
        return not self.newcomer or float(np.median(self.scores)) >= SURE_NEWCOMER

    @property
    def known_look(self) -> np.ndarray | None:
        """Their look, once it is known (``LOOK_KNOWN``), and never a false find's
        (``surely_seen``): followed with the full model, a skeleton over the sports2d man's box
        was found in 10 of the first 21 frames, and its look took the woman when she came in."""
        return self.look if self.frames_found >= LOOK_KNOWN and self.surely_seen else None

    def found(self, det: Detection, look: np.ndarray | None, apart: bool = True) -> None:
        self.box, self.missed = det.box.copy(), 0
        self.frames_found += 1
        self.scores.append(det.score)
        self.keypoints = [det.keypoints2d.copy()] + self.keypoints[: REMEMBERED - 1]
        if look is not None and (apart or self.look is None):
            self.look = look if self.look is None else (1 - LOOK_RATE) * self.look + LOOK_RATE * look


class Tracker:
    """Follows several people through a clip: one detector pass per frame serves everyone.

    Each followed person keeps an identity (``Followed.id``). A detection is given to the person
    whose joints it lies nearest (``place_cost``), within a tolerance that grows while the
    person is missing. Someone missing for longer than the last few frames is taken back only
    when their look (a colour histogram of their segmentation mask) matches theirs and tells
    them apart from everyone else followed; otherwise the detection is a newcomer (a new track):
    identities are never swapped. ``next`` returns the followed people found, and the newcomers,
    whom the caller may ``follow``."""

    def __init__(self, detector: PoseDetector, video: VideoPoseDetector | None = None,
                 crops: PoseDetector | None = None) -> None:  # fmt: skip
        """``detector`` finds the people at the start; ``video`` follows them; ``crops`` (default:
        ``detector``) searches around a lost person's last box when there is no ``video`` or it
        loses them."""
        self.detector = detector
        self.video = video
        self.crops = crops or detector
        self.people: list[Followed] = []
        self.people_at_start = 0
        self.started = False
        self.frames = 0  # frames passed to ``next``

    def start(self, rgb: np.ndarray, time_s: float = 0.0) -> list[Detection]:
        """Everyone in the first frame, most prominent first (raises ``no_person``); ``follow``
        those to be followed."""
        people = find_people(self.detector, rgb)
        self.people_at_start = len(people)
        self.started = True
        if self.video is not None:
            # Room for everyone here, followed or not (the landmarker keeps the people it follows
            # apart where they overlap), and for a second person at least: one person alone
            # leaves room for whoever comes in, which the landmarker's person detector finds at
            # once (in the sports2d clip it followed the man through his flip better that way).
            self.video.follow_at_most(max(len(people), 2))
            self.video.detect_all(rgb, time_s)  # the video landmarker starts following from here
        return people

    def follow(self, det: Detection, rgb: np.ndarray) -> int:
        """Follow ``det``'s person from this frame on; returns their id."""
        person = Followed(len(self.people), det.box.copy(), newcomer=self.frames > 0)
        person.found(det, look(rgb, det))
        self.people.append(person)
        self._make_room()
        return person.id

    def next(self, rgb: np.ndarray, time_s: float = 0.0, ahead: tuple[np.ndarray, float] | None = None
             ) -> tuple[dict[int, Detection], list[Detection]]:  # fmt: skip
        """The followed people found in this frame (by id), and the people found who are none of
        them (most prominent first). ``ahead``: the next frame and its time, if known, which the
        video landmarker starts on while this frame's crop searches run (the same answers, sooner)."""
        self.frames += 1
        people = self.video.detect_all(rgb, time_s) if self.video is not None else []
        if self.video is not None and len(people) >= self.video.max_people and self._check_for_newcomers():
            # The landmarker has no room left, so its person detector did not run: someone who
            # came in is looked for in the whole frame (one heavy pass).
            people += [d for d in self.detector.detect_all(rgb, second_pass=False)
                       if not any(_same_person(d, p) for p in people)]  # fmt: skip
        looks = {id(d): look(rgb, d) for d in people}
        found = self._assign(people, looks)
        # The recently lost: a tight crop around their last box searched (a search finds no one else).
        lost = [p for p in self.people if p.id not in found and p.missed < SEARCH_FRAMES and p.searched_when_lost]
        if lost and ahead is not None and self.video is not None:
            # Only then: where nobody is searched for, the fits are what the clip waits for, and
            # a pass beside them slowed them (Fast, the kit's clips without a hidden person).
            self.video.read_ahead(*ahead)
        for person in lost:
            found.update(self._search_lost(person, rgb, found, looks))
        for person in self.people:
            if person.id in found:
                det = found[person.id]
                others = [p.box for p in self.people if p is not person and p.missed <= SEARCH_FRAMES]
                apart = not any(_inside(det.box, b) > APART for b in others)
                person.found(det, looks[id(det)], apart)
            else:
                person.missed += 1
        self._make_room()
        # Newcomers come from the whole-frame pass only (a crop may hold part of someone followed),
        # and are none of: a second, partial reading of someone (a skeleton mostly inside their
        # box, found now or lost a moment ago); someone who looks like a lost person (once gone
        # for a few frames, their look takes them back, in ``cost``).
        lost = [p.known_look for p in self.people if p.missed > 0 and p.known_look is not None]
        taken = {id(d) for d in found.values()}
        boxes = [f.box for f in found.values()] + [p.box for p in self.people if 0 < p.missed <= SEARCH_FRAMES]

        def newcomer(d: Detection) -> bool:
            mine = looks[id(d)]
            return (id(d) not in taken and not any(_same_person(d, f) for f in found.values())
                    and not any(_inside(d.box, b) > INSIDE for b in boxes)
                    and not (mine is not None and any(similarity(lk, mine) >= LOOK_MIN for lk in lost)))  # fmt: skip

        return found, [d for d in people if newcomer(d)]

    def _make_room(self) -> None:
        """Room in the video landmarker for everyone followed who was found in this frame, but
        for a newcomer's glimpse (often a false find, which the landmarker would then follow)."""
        here = sum(p.missed == 0 and p.searched_when_lost for p in self.people)
        if self.video is not None and here > self.video.max_people:
            self.video.follow_at_most(here)

    def _check_for_newcomers(self) -> bool:
        """Whether to search the whole frame for newcomers when the video landmarker has no room
        left: every NEWCOMER_CHECK frames, and in each frame after a newcomer's glimpse until
        they are found in enough frames to be given room (or lost)."""
        glimpsed = any(not p.searched_when_lost and p.missed == 0 for p in self.people)
        return glimpsed or self.frames % NEWCOMER_CHECK == 0

    def _search_lost(self, person: Followed, rgb: np.ndarray, found: dict[int, Detection],
                     looks: dict[int, np.ndarray | None]) -> dict[int, Detection]:  # fmt: skip
        """``person`` in a crop around their last box: one pass, a second with the people in it
        painted over only if the first does not find them, and, where their last box overlaps
        someone found in this frame, the whole people found in the crop's left and right parts
        if neither does (``looks`` gets the new ones'): one hidden behind someone is often in the
        landmarker's box for the two."""

        def theirs(people: list[Detection]) -> dict[int, Detection]:
            near = [d for d in people if not any(_same_person(d, f) for f in found.values())]
            looks.update({id(d): look(rgb, d) for d in near})
            return self._assign(near, looks, only=person)

        first: dict[int, Detection] = {}

        def enough(people: list[Detection]) -> bool:
            first.update(theirs(people))  # kept: when it is enough, the crop's answer is these people
            return bool(first)

        crop = grown_box(person.box, TRACK_MARGIN, rgb.shape[1], rgb.shape[0])
        people = self.crops.detect_all_in_crop(rgb, crop, enough=enough)
        got = first or theirs(people)
        if got or not any(_inside(person.box, f.box) > APART_OVERLAP for f in found.values()):
            return got
        return theirs(_whole_in_parts(self.crops, rgb, person.box))

    def _assign(self, people: list[Detection], looks: dict[int, np.ndarray | None],
                only: Followed | None = None) -> dict[int, Detection]:  # fmt: skip
        """Detections to followed people (``looks``: each detection's look by ``id``), the
        cheapest pairs first."""
        pairs = []
        for person in [only] if only is not None else self.people:
            for k, det in enumerate(people):
                cost = self.cost(person, det, looks[id(det)])
                if cost is not None:
                    pairs.append((cost, person.id, k))
        found: dict[int, Detection] = {}
        used: set[int] = set()
        for cost, pid, k in sorted(pairs, key=lambda p: p[0]):
            if pid not in found and k not in used:
                found[pid] = people[k]
                used.add(k)
        return found

    def cost(self, person: Followed, det: Detection, det_look: np.ndarray | None) -> float | None:
        """How well ``det`` fits as ``person`` (lower is better), or None if it cannot be them."""
        if person.missed > REMEMBERED:  # long gone: the look must say it is them, and no one else
            if det_look is None or person.known_look is None:
                return None
            mine = similarity(det_look, person.known_look)
            others = [similarity(det_look, p.known_look) for p in self.people
                      if p is not person and p.known_look is not None]  # fmt: skip
            if mine < LOOK_MIN or any(mine < o + LOOK_MARGIN for o in others):
                return None
            return 1.0 - mine
        if self._looks_like_someone_else(person, det_look):
            return None
        place = place_cost(det, person.keypoints)
        if place is None:  # too few joints to compare: the boxes must agree
            return 0.99 * SAME_PLACE if box_iou(det.box, person.box) > 0.5 else None
        tolerance = SAME_PLACE + SAME_PLACE_PER_MISSED_FRAME * person.missed
        return place if place < tolerance else None

    def _looks_like_someone_else(self, person: Followed, det_look: np.ndarray | None) -> bool:
        """Where two people overlap, the landmarks can slide from one onto the other while the
        joints stay near: a detection that looks clearly more like another followed person than
        like ``person`` is not theirs."""
        if det_look is None or person.look is None:
            return False
        mine = similarity(det_look, person.look)
        return any(similarity(det_look, p.look) > mine + LOOK_MARGIN
                   for p in self.people if p is not person and p.look is not None)  # fmt: skip


def place_cost(det: Detection, history: list[np.ndarray]) -> float | None:
    """Mean distance of the body joints from those of one of ``history``'s frames (the
    nearest, either labelling: one frame's skeleton may be off), as a fraction of the body's
    size; None when too few joints are seen in both."""
    costs = []
    for last in history:
        both = (det.keypoints2d[kpl.BODY, 2] > MIN_JOINT_CONF) & (last[kpl.BODY, 2] > MIN_JOINT_CONF)
        if both.sum() < MIN_SHARED_JOINTS:
            continue
        ref = last[kpl.BODY][both, :2]
        dist = min(float(np.linalg.norm(k[kpl.BODY][both, :2] - ref, axis=1).mean())
                   for k in (det.keypoints2d, det.keypoints2d[kpl.MIRROR]))  # fmt: skip
        costs.append(dist / max(_body_size(last), 1.0))
    return min(costs) if costs else None


def _inside(a: np.ndarray, b: np.ndarray) -> float:
    """The share of box ``a`` that lies inside box ``b``."""
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    return float(w * h / max((a[2] - a[0]) * (a[3] - a[1]), 1e-9))


def _same_person(a: Detection, b: Detection) -> bool:
    """Two skeletons of one person (the crop search may find again whom the video pass found)."""
    cost = place_cost(a, [b.keypoints2d])
    return box_iou(a.box, b.box) > 0.7 if cost is None else cost < DUPLICATE_PLACE


def look(rgb: np.ndarray, det: Detection) -> np.ndarray | None:
    """A person's look: the hue-saturation-value histogram of the pixels of their segmentation mask
    (normalised; None when the mask is nearly empty). Clothes tell two people apart where
    their places cannot (after one was hidden or lost)."""
    x0, y0, x1, y1 = (int(v) for v in det.box)
    if x1 - x0 < 4 or y1 - y0 < 4:
        return None
    mask = (det.mask[y0:y1, x0:x1] > 0.5).astype(np.uint8)
    if mask.sum() < 100:
        return None
    hsv = cv2.cvtColor(np.ascontiguousarray(rgb[y0:y1, x0:x1]), cv2.COLOR_RGB2HSV)
    hist = cv2.calcHist([hsv], [0, 1, 2], mask, list(LOOK_BINS), [0, 180, 0, 256, 0, 256]).ravel()
    return hist / max(float(hist.sum()), 1.0)


def similarity(a: np.ndarray, b: np.ndarray) -> float:
    """Bhattacharyya coefficient of two normalised histograms: 1 alike, 0 nothing in common."""
    return float(np.sqrt(np.maximum(a, 0) * np.maximum(b, 0)).sum())

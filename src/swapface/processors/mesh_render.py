"""Rendering one source face onto one target face over the shared 468-point mesh topology.

The steps, each a pure function of arrays:

1. visibility — per-triangle facing on both meshes: target triangles that face away are not drawn
   (drawn far to near where they overlap; a steep one enclosed by drawn ones is drawn too, so no sliver of
   the target shows through); a source triangle that faces away or is squeezed takes its
   texture from the mirror-symmetric triangle instead (soft symmetry), so turned faces do not tear;
2. texture — the source image is warped through both maps (own and mirrored triangles) in one remap each;
3. light — each face's shading is a first-order spherical-harmonics fit on its mesh normals over plain
   skin; the source's texture is divided by its own shading and multiplied by the target's, which moves
   tone, colour cast and light direction to the target's in one step;
4. foreign pixels — source pixels that are not its face (backdrop, hair, a stray strand, teeth) are found
   against the source's own skin and lip colour and refilled from the surrounding face texture;
5. detail — a sharper source is softened to the target's sharpness; under a softer one the target keeps its
   finest grain (pores, noise), clipped so its wrinkles and features do not show through;
6. eyes — the source's eyes are drawn into the target's lid openings (a closed target eye stays closed),
   each moved so its iris sits where the target's does (the target's gaze is kept) and never recoloured
   by the skin's tone change; lifted to a brighter face as light lifts it (pupils and irises stay dark);
7. compositing — multi-band blending inside the mask (drawn triangles less the target's own mouth
   interior, less the regions the user keeps), clamped to the target's visible silhouette.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np

from swapface.faces.mediapipe import LEFT_EYE_RING, RIGHT_EYE_RING
from swapface.geometry.blend import (
    fill_from_surroundings,
    multiband_blend,
    pyramid_levels,
)
from swapface.geometry.color import feather, fill_holes, lab_to_srgb, masked_low_pass, srgb_to_lab
from swapface.geometry.eyes import both_irises, catchlights, eye_width, opening_mask, without_catchlights
from swapface.geometry.face_topology import (
    HAIRLINE_Y,
    INNER_LIPS,
    LEFT_BROW,
    REGIONS,
    RIGHT_BROW,
    FaceTopology,
    per_topology,
)
from swapface.geometry.fields import select, spread
from swapface.geometry.mesh_warp import (
    NO_TRIANGLE,
    DestinationTriangles,
    bounding_rect,
    rasterise_ids,
)
from swapface.geometry.shading import (
    evaluate_shading,
    fit_shading,
    mesh_points,
    to_linear,
    to_srgb,
    triangle_facing,
    vertex_normals,
)

DRAW_FACING = 0.12  # a target triangle facing the camera less than this (cosine) is not drawn
OWN_FACING = (0.0, 0.3)  # a source triangle facing less than the second takes the mirror side's texture where
                         # that faces the camera better (fully when better by the span); under the first: unusable
SKIN_CHROMA_LIMIT = 0.45  # log-chroma distance from the source's skin beyond which a skin pixel is foreign
HAIR_CHROMA_LIMIT = 1.5  # ... and beyond which it is foreign anywhere, below the mouth too (where dark hair is a beard)
DETAIL_MARGIN = 0.9  # an overlay sharper than this share of the target's detail is softened to it (a crisp photo on
# soft video; a little under the target's own, so the seam stays soft where the change fades out)
SOFTENING_RANGE = (0.4, 3.0)  # pixels: the least and the most blur a sharper overlay is given
ANALYSIS_IOD = 32.0  # pixels between the eyes on the grid where light, tone and masks are worked out
STEP_TOLERANCE = 0.05  # a face within this share of a whole grid step takes it (one reduced to 64 px by rounding)
# share of the finer change of lightness (below BROAD_TONE_SCALE) applied: all of it wipes the source skin's own
# shading, an identity cue (colour always moves fully: it is needed to follow a colour cast)
FINE_LIGHTNESS_SHARE = 0.7
LOCAL_TONE_SCALE = 0.4  # inter-ocular distances: the scale above which tone and light follow the target's skin
BROAD_TONE_SCALE = 0.8  # inter-ocular distances: the scale above which all of the change of lightness is taken
# inter-ocular distances: on the outer cheeks tone and light follow the target's skin this finely, all of the
# change of lightness taken (a cheek's highlight or shadow is the target's light on the target's expression;
# the cheeks carry little identity and meet the target's jaw, ears and neck)
CHEEK_TONE_SCALE = 0.12
CHEEK_X = (0.3, 0.5)  # canonical |x| (inter-ocular units) over which the outer cheeks begin: from the nose wings
CHEEK_Y = (-0.4, -0.2)  # canonical y (eyes at -0.44) over which they begin: from just below the eyes
MOUTH_LEVEL = [61, 291]  # mouth corners: the outside colour band stops at their height
CHROMA_NOISE = 0.01  # added to both chromaticity spreads: a flat-coloured target does not erase all colour
CHROMA_DARK_FLOOR = 8.0  # CIELAB lightness under which a pixel's chromaticity is measured as at this lightness
CHROMA_GAIN_FLOOR = 0.3  # the least share of the source's chroma variation kept
CHROMA_ANCHOR = 0.04  # (a, b) per unit of lightness: a source skin at least this chromatic anchors neutral at 0
PAST_NEUTRAL = 0.05  # (a, b) per unit of lightness: a target skin this far past neutral (a cast) takes the plain shift
MIN_WORKING_IOD = 64.0  # pixels between the eyes below which a face is never rendered on a reduced copy
MAX_WORKING_IOD = 100.0  # pixels between the eyes above which a face is rendered on a reduced copy, its grain kept
EDGE_RAMP = 0.12  # inter-ocular distances over which the change fades out inside the face's silhouette
MIN_EDGE_RAMP = 14.0  # pixels: the least the fade-out spans (a soft, low-resolution face needs more than its share)
EDGE_RAMP_LIMIT = 0.25  # inter-ocular distances: ... but never more than this (small faces in a group)
SHADE_GAIN_LIMIT = 3.0  # the most the not-face test brightens (or darkens) skin to the skin's typical light
NOT_FACE_LIMIT = 0.6  # probability of hair or backdrop above which a source pixel is not copied
DONOR_NOT_FACE = 0.5  # ... and at which a skin pixel gives nothing to a refill (its weight falls as (1 − p / this)²)
# probability of hair or backdrop from which a skin pixel takes its mirror side's texture instead, the margin by
# which the mirror side must be clearer, and the span over which the change is ramped in
HAIR_TO_MIRROR = (0.3, 0.15, 0.3)
# an object held in front of the lower face (``in_front_of_lower_face``), judged on its colour averaged over
# IN_FRONT_SCALE inter-ocular distances: less than IN_FRONT_TOWARD_SKIN[0] of the way from grey to the skin's colour
# (ramped over [1]) and more than IN_FRONT_OFF_LINE[0] off the line from grey to the skin in log-chroma (ramped over
# [1]); then grown, up to IN_FRONT_GROW[0] inter-ocular distances, through every connected pixel less than [1] of the
# way to the skin's colour or darker than [2] of its level, and widened by [3] inter-ocular distances (its rim)
IN_FRONT_SCALE = 0.03
IN_FRONT_TOWARD_SKIN = (0.25, 0.1)
IN_FRONT_OFF_LINE = (0.15, 0.05)
IN_FRONT_MIN_LEVEL = 0.1  # ... where it is at least this share of the skin's level (black has no colour to judge)
# ... and only where the skin's colour (log-chroma, linear light) is at least IN_FRONT_SKIN_CHROMA from grey and
# within IN_FRONT_SKIN_CONE degrees of skin's usual hue in a neutral light (SKIN_HUE; every gallery face lies within
# 25°): under a cool cast grey moves off the line's end and a beard read as an object
SKIN_HUE = np.array([0.8, -0.35], np.float32) / float(np.hypot(0.8, -0.35))
IN_FRONT_SKIN_CHROMA = 0.25
IN_FRONT_SKIN_CONE = 35.0
IN_FRONT_MIN_SIZE = 0.12  # ... in a patch at least this many inter-ocular distances square (an object is no speck)
IN_FRONT_GROW = (0.15, 0.6, 0.6, 0.05)
EYE_CHROMA_GAIN = 1.0  # the most a drawn eye's CIELAB chroma may grow as it lightens: not at all (a dark source's
# eyes lighten with its skin's tone onto a pale face, not with more light; let grow 1.5×, a brown iris went amber)
HAIR_EDGE = 0.05  # inter-ocular distances: how far past the source's hair on the forehead its shade is looked for
HAIR_SHADE = (0.85, 0.1)  # below this share of the forehead's typical light (ramped over the second) skin is shade
# below this share of its mirror side's light (ramped over the second), the fitted light taken out, skin is in a cast
# shadow (a side light's shadow of the nose or brow, which a smooth fitted light cannot explain)
CAST_SHADOW = (0.5, 0.15)
CAST_SHADOW_SCALE = 0.1  # inter-ocular distances: the scale at which light is compared with the mirror side's
# above the first share of the surrounding skin's level (ramped in over the second), the fitted light taken out, and
# with its colour moved SHINE_PALER's share of the way from that skin's colour to grey (log-chroma, ramped in over
# its second), skin is shine: a specular highlight or a rim light, the source photo's light and not its face
SHINE = (1.1, 0.2)
SHINE_PALER = (0.4, 0.3)
# log-chroma: the skin's colour, toward grey, is counted as at least the first (a nearly grey photo) and at most the
# second (a ruddy skin, which in linear light measures up to 1.4): the share of the way is taken of that much
SHINE_COLOURFUL = (0.3, 0.8)
SHINE_SCALE = 0.1  # inter-ocular distances: the scale of the surrounding skin a pixel is compared with
SHINE_GLARE = 0.5  # share of a shine's excess over its surrounding skin's level that is taken out
# below this share of the target skin's usual light and of the source's at the same place, the fitted lights taken
# out (ramped in over the second), the target's upper face is in a cast shadow (a hat's brim, a fringe) that the
# swapped face takes too
TARGET_SHADE = (0.6, 0.25)
TARGET_SHADE_SCALE = 0.08  # inter-ocular distances: the scale at which the target's shade is looked at
FEATURE_MARGIN = 0.08  # inter-ocular distances round the eyes and brows where it is not looked at
SHADE_BAND_Y = -0.1  # canonical y (eyes at -0.44, nose tip 0.06) above which it is looked for: not the nostrils or a beard
BEARD_ZONE = (0.55, 0.2)  # canonical |x| under and y over which (inter-ocular units; nose tip at 0.06) the skin is round the mouth
BEARD_DARK = 0.7  # ... where the target has a beard when its skin there is under this share of its usual level
GRAIN_CLIP = 1.5  # robust spreads at which the target's fine detail kept under a softer source is clipped
GRAIN_LINE = (2.0, 3.0)  # robust spreads of local detail (RMS) over which the target's detail is a line, not grain:
# taken whole below the first, none of it above the second (clipped alone, a wrinkle still showed at the clip's depth)
CHEEK_GRAIN_SIGMA = 1.0  # pixels: the blur below which the outer cheeks' detail is the target's grain
GRAIN_SAMPLE = 60000  # pixels: about as many as are sampled for the grain's spread, on a face bigger than that ninefold
GAZE_SHIFT = (0.12, 0.05)  # eye widths: the most a source eye is moved (across, down) to look where the target looks
MAX_HALVINGS = 4  # the most a source photo is halved for faces far smaller than it
DETAIL_IOD = 64.0  # pixels between the eyes at which a source face's sharpness is measured (``fine_detail``)
MIN_DRAWN_EYE = 9.0  # pixels corner to corner under which an eye stays the target's (at 9-14 px the source's eye still
# reads as an eye, and it carries identity: on the gallery shrunk to 220 px, identity top-1 0.50 at 14, 0.71 at 9)
BROW_TAIL_X = 0.7  # canonical |x| (inter-ocular units) beyond which a brow triangle is its outer end
HAIR_LIGHTNESS_SHARE = 0.5  # share of the change of lightness that hair on the face (brows, stubble) takes
HAIR_DARKNESS = (0.15, 0.25)  # share of the skin's albedo luma under which a pixel takes it as hair, ramped over the second
BROW_REACH = 0.1  # inter-ocular distances beyond the mesh's brow outline over which a brow's darkness rule fades out
SOCKET_REACH = 0.22  # inter-ocular distances beyond an eye's lid line that its socket's shade is looked for over
SURROUND_REACH = 0.4  # inter-ocular distances beyond an eye's lid line that the skin round its socket reaches
SOCKET_LIFT_LIMIT = 3.0  # the most a source's eye socket is lightened by to take the target's light there
SOCKET_LIFT_SHARE = 0.75  # the share of that lift (in log light) that is taken
EYE_REACH = 0.1  # inter-ocular distances beyond an eye's lid line over which its band (lashes, liner, lids) fades out
BAND_KEPT = 0.25  # the share of a brow's or an eye's band above which a pixel is the feature's, never taken for hair
_BIN_GAUSSIAN = cv2.getGaussianKernel(9, 1.0).astype(np.float32)  # σ = 1 bin, out to 4σ
_UNIT_KERNEL = np.ones((1, 1), np.float32)


def _region_table(*names: str) -> np.ndarray:
    """A bool per region index, True for the named regions: a map of region indices becomes a mask by one gather."""
    table = np.zeros(len(REGIONS), bool)
    table[[REGIONS.index(name) for name in names]] = True
    return table


_SKIN = _region_table("skin", "nose")
_LIPS = _region_table("upper-lip", "lower-lip")
_EYES_AND_BROWS = _region_table("left-eye", "right-eye", "left-eyebrow", "right-eyebrow")
_MIRRORABLE = _region_table("skin", "nose", "left-eyebrow", "right-eyebrow")


@dataclass(frozen=True)
class FaceShape:
    """What the renderer needs of one face: its mesh in 3D, facing per triangle, normals and light."""

    points: np.ndarray  # (468, 3) frame pixels
    facing: np.ndarray  # (T,)
    normals: np.ndarray  # (468, 3)
    light: np.ndarray  # (4, 3) shading coefficients, linear RGB
    interocular: float
    skin_chroma: np.ndarray  # (2,) median log(R/G), log(B/G) of the plain skin's albedo
    skin_luma: float  # median albedo luminance of the plain skin
    irises: tuple[np.ndarray | None, np.ndarray | None] | None = None  # where its eyes look; None: found when drawn


@dataclass(frozen=True)
class SourceFace:
    """A source photo prepared once: its image, its shape and light, its skin's albedo statistics."""

    image: np.ndarray  # RGB uint8
    shape: FaceShape
    shading: np.ndarray  # (468, 3) its own light evaluated at its own normals
    mirror_shading: np.ndarray  # (468, 3) its light at the mirror vertices' normals
    mirror_facing: np.ndarray  # (T,) facing of each triangle's mirror image on the source
    not_face: np.ndarray  # float32 map over the image: probability that a pixel is hair or background
    irises: tuple[np.ndarray | None, np.ndarray | None]  # iris centres in the right and left eye (None: not seen)
    eye_openings: np.ndarray  # uint8 map over the image: 1 inside either eye's lid line
    # float32 map over the image, 0..1: skin in a shade its mirror side lacks (beside hair on the forehead, see
    # ``hair_shade``, or a side light's cast shadow, see ``cast_shadow``): its texture is taken from the other side
    shade: np.ndarray
    in_front: np.ndarray  # float32 map over the image, 0..1: an object in front of the lower face (``in_front_of_lower_face``)
    halves: tuple[np.ndarray, ...] = ()  # the image halved again and again: read for faces far smaller than it


def edge_ramp(area: np.ndarray, width: float) -> np.ndarray:
    """0 on and outside the edge of ``area``, rising smoothly to 1 at ``width`` pixels inside: the change a
    swap makes fades out before the edge of the visible face instead of being cut there (no hard seam)."""
    distance = cv2.distanceTransform(area.view(np.uint8), cv2.DIST_L2, 3)
    t = np.clip(distance / max(width, 1.0), 0.0, 1.0)
    return (t * t * (3.0 - 2.0 * t)).astype(np.float32)


@per_topology
def outer_cheeks(topology: FaceTopology) -> np.ndarray:
    """Per vertex, 0..1: how much it lies on the outer cheeks and jaw, beside the nose and mouth and below the
    eyes, rising smoothly from the features (where the source's own shading is kept as an identity cue)."""
    x, y = np.abs(topology.canonical[:, 0]), topology.canonical[:, 1]
    across = np.clip((x - CHEEK_X[0]) / (CHEEK_X[1] - CHEEK_X[0]), 0.0, 1.0)
    down = np.clip((y - CHEEK_Y[0]) / (CHEEK_Y[1] - CHEEK_Y[0]), 0.0, 1.0)
    return (across * down).astype(np.float32)


@per_topology
def beard_zone(topology: FaceTopology) -> np.ndarray:
    """Per triangle: the skin round the mouth, from under the nose to the chin, where a moustache or a goatee
    grows: a bearded target's skin there is no guide to its tone (the beard would haze the swapped lips)."""
    x, y = np.abs(topology.canonical[topology.triangles, 0]).mean(1), topology.canonical[topology.triangles, 1].mean(1)
    return topology.triangles_in(("skin",)) & (y > BEARD_ZONE[1]) & (x < BEARD_ZONE[0])


@per_topology
def brow_ends(topology: FaceTopology) -> np.ndarray:
    """Per triangle: centroid beyond ``BROW_TAIL_X`` across, as far out as the brows' outer ends and beyond."""
    return np.abs(topology.canonical[topology.triangles, 0].mean(1)) > BROW_TAIL_X


@per_topology
def brow_tails(topology: FaceTopology) -> np.ndarray:
    """Per triangle: the outer ends of the brows (centroid beyond ``BROW_TAIL_X`` across), where a strand of
    hair at the temple may lie inside the brow's triangles."""
    return topology.triangles_in(("left-eyebrow", "right-eyebrow")) & brow_ends(topology)


@per_topology
def brow_band(topology: FaceTopology) -> np.ndarray:
    """Per vertex, 0..1: 1 inside the mesh's outline of either brow, falling to 0 at ``BROW_REACH`` beyond it.

    The outline runs along a brow's upper part (a thick or low-set brow reaches past it toward the eye), and
    triangles are a few pixels wide on a small face: a rule kept to the brow's triangles drew a brow as dashes."""
    return _outline_band(topology, (RIGHT_BROW, LEFT_BROW), BROW_REACH)


@per_topology
def eye_band(topology: FaceTopology) -> np.ndarray:
    """Per vertex, 0..1: 1 inside either eye's lid line, falling to 0 at ``EYE_REACH`` beyond it (lashes, liner,
    the lids' own shade)."""
    return _outline_band(topology, (RIGHT_EYE_RING, LEFT_EYE_RING), EYE_REACH)


@per_topology
def socket_band(topology: FaceTopology) -> np.ndarray:
    """Per vertex, 0..1: 1 inside either eye's lid line, falling to 0 at ``SOCKET_REACH`` beyond it (the lids up to
    the brow, the skin under the eye): where a brow's ridge and a deep-set eye cast a photo's light into shade."""
    return _outline_band(topology, (RIGHT_EYE_RING, LEFT_EYE_RING), SOCKET_REACH)


@per_topology
def socket_surround(topology: FaceTopology) -> np.ndarray:
    """Per vertex, 0..1: the skin round the sockets (cheekbones, temples, the brows' outer skin), 0 within
    ``SOCKET_REACH`` of the lid lines, beyond it falling from near 1 to 0 at ``SURROUND_REACH``: what the
    sockets' light is measured against."""
    wide = _outline_band(topology, (RIGHT_EYE_RING, LEFT_EYE_RING), SURROUND_REACH)
    return np.where(socket_band(topology) > 0, 0.0, wide).astype(np.float32)


def _outline_band(topology: FaceTopology, outlines: tuple[list[int], ...], reach: float) -> np.ndarray:
    """Per vertex, 0..1: 1 inside any of the closed ``outlines`` (vertex lists) of the canonical face, falling
    linearly to 0 at ``reach`` (inter-ocular distances) beyond the nearest."""
    xy = topology.canonical[:, :2].astype(np.float32)
    distance = np.full(len(xy), np.inf)
    for outline in outlines:
        polygon = xy[outline].reshape(-1, 1, 2)
        # signed distance to the outline, positive inside: 0 inside, the distance outside
        signed = np.array([cv2.pointPolygonTest(polygon, (float(x), float(y)), True) for x, y in xy])
        distance = np.minimum(distance, np.maximum(-signed, 0.0))
    return np.clip(1.0 - distance / reach, 0.0, 1.0).astype(np.float32)


@per_topology
def above_eyes(topology: FaceTopology) -> np.ndarray:
    """Per triangle: centroid above the eyes' level (forehead, temples, brows), where hair falls across a face."""
    eye_level = float(topology.canonical[RIGHT_EYE_RING + LEFT_EYE_RING, 1].mean())
    return topology.canonical[topology.triangles, 1].mean(1) < eye_level


@per_topology
def shade_band(topology: FaceTopology) -> np.ndarray:
    """Per triangle: the plain skin of the upper face (forehead, temples, around the eyes, the nose's bridge), where
    the target's cast shadows are looked for; lower down, nostrils, a moustache and a beard are dark on their own."""
    high = topology.canonical[topology.triangles, 1].mean(1) < SHADE_BAND_Y
    return high & topology.triangles_in(("skin", "nose"))


def target_shade(target_even: np.ndarray, source_even: np.ndarray, band: np.ndarray, comparable: np.ndarray,
                 features: np.ndarray, iod: float) -> np.ndarray:
    """Per pixel, the share of its light that the target's face keeps under a cast shadow (1 where lit). The
    fitted light is smooth, so a hat's brim or a fringe across the eyes stays in the target's evenly lit skin
    (``target_even``: linear RGB ÷ the fitted light ÷ the usual skin's level) as a patch far darker than that
    usual level and, where the source's skin is seen too (``comparable``), than the same place on the source
    (``source_even``, likewise). Looked at on ``band``'s plain skin at ``TARGET_SHADE_SCALE`` inter-ocular
    distances (``iod`` pixels), and carried from the skin around onto ``features`` (the eyes and brows, whose
    own darkness says nothing of the light)."""
    sigma = TARGET_SHADE_SCALE * iod
    grey = target_even.mean(-1, keepdims=True)
    target_level, density = masked_low_pass(grey, band, sigma)
    level = target_level[..., 0]
    start, span = TARGET_SHADE
    if not (level[density > 0.15] < start).any():  # no shade anywhere (most faces): nothing more to work out
        return np.ones(band.shape, np.float32)
    if comparable.any():
        both = band & comparable
        target_both, seen = masked_low_pass(grey, both, sigma)
        source_both, _ = masked_low_pass(source_even.mean(-1, keepdims=True), both, sigma)
        relative = target_both[..., 0] / np.maximum(source_both[..., 0], 1e-3)
        trust = np.clip(seen / 0.3, 0.0, 1.0)
        level = np.maximum(level, trust * relative + (1.0 - trust) * level)
    known = np.clip(density / 0.3, 0.0, 1.0)
    holes = features & (known < 1.0)
    if holes.any() and (known >= 1.0).any():  # nearest skin first: a brow takes the forehead's light, an eye its lids'
        carried = fill_from_surroundings(level[..., None].astype(np.float32), holes, known >= 1.0, 0.03 * iod)[..., 0]
        level = known * level + (1.0 - known) * np.where(features, carried, 1.0)
    else:
        level = known * level + (1.0 - known)
    level = np.clip(level, 0.0, 1.0)
    shaded = np.clip((start - level) / span, 0.0, 1.0)
    kept = (1.0 - shaded * (1.0 - level)).astype(np.float32)
    return cv2.GaussianBlur(kept, (0, 0), max(0.5 * TARGET_SHADE_SCALE * iod, 0.5))  # no edge where the fill meets


@per_topology
def hairline_reach(topology: FaceTopology) -> np.ndarray:
    """Per vertex, how much of the source may show there: 1 up to the hairline, falling to 0 at the mesh's
    upper rim, so the upper forehead (an identity cue) is drawn but fades out before the target's hair."""
    y = topology.canonical[:, 1]
    top = float(y.min())
    return np.clip((y - top) / (HAIRLINE_Y - top), 0.0, 1.0).astype(np.float32)


def find_irises(image: np.ndarray, points: np.ndarray) -> tuple[np.ndarray | None, np.ndarray | None]:
    """The iris centres of a face's right and left eye in ``image`` (frame pixels; None where not seen)."""
    return both_irises(image, (points[RIGHT_EYE_RING], points[LEFT_EYE_RING]))


def interocular(points: np.ndarray) -> float:
    """Distance between the eye-ring centres of a mesh."""
    return float(np.linalg.norm(points[LEFT_EYE_RING, :2].mean(0) - points[RIGHT_EYE_RING, :2].mean(0)))


def sample_linear(image: np.ndarray, xy: np.ndarray, blur: float) -> np.ndarray:
    """Linear-RGB colours at points, from the image blurred by ``blur`` pixels (noise and pores averaged
    out); computed on a grid shrunk so the blur is about a pixel, since only local means are wanted."""
    xs, ys = xy[:, 0], xy[:, 1]
    h, w = image.shape[:2]
    inside = (xs >= 0) & (ys >= 0) & (xs <= w - 1) & (ys <= h - 1)
    out = np.full((len(xy), 3), np.nan, np.float32)
    if not inside.any():
        return out
    x1, y1 = max(int(xs[inside].min()) - 4, 0), max(int(ys[inside].min()) - 4, 0)
    x2, y2 = min(int(xs[inside].max()) + 5, w), min(int(ys[inside].max()) + 5, h)
    patch = to_linear(image[y1:y2, x1:x2])
    factor = max(1.0, blur)
    if factor > 1.0:
        size = (max(int(patch.shape[1] / factor), 1), max(int(patch.shape[0] / factor), 1))
        patch = cv2.resize(patch, size, interpolation=cv2.INTER_AREA)
    px = ((xs[inside] - x1 + 0.5) / factor - 0.5).astype(np.float32).reshape(-1, 1)
    py = ((ys[inside] - y1 + 0.5) / factor - 0.5).astype(np.float32).reshape(-1, 1)
    out[inside] = cv2.remap(patch, px, py, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE).reshape(-1, 3)
    return out


def face_shape(image: np.ndarray, landmarks: np.ndarray, depth: np.ndarray | None, topology: FaceTopology) -> FaceShape:
    """The 3D shape, facing, normals, fitted light and skin albedo statistics of a face in an image."""
    points = mesh_points(landmarks, depth)
    facing = triangle_facing(points, topology.triangles)
    normals = vertex_normals(points, topology.triangles)
    iod = max(interocular(points), 1.0)
    skin = topology.skin_vertices
    colours = sample_linear(image, points[skin, :2], 0.04 * iod)
    seen = np.isfinite(colours).all(1) & (normals[skin, 2] < -0.35)
    light = fit_shading(colours[seen], normals[skin][seen])
    albedo = np.maximum(colours[seen] / evaluate_shading(light, normals[skin][seen]), 1e-4)
    chroma = np.median(_log_chroma(albedo), axis=0) if len(albedo) else np.zeros(2, np.float32)
    luma = float(np.median(albedo.mean(1))) if len(albedo) else 1.0
    return FaceShape(points, facing, normals, light, iod, chroma.astype(np.float32), luma)


def moved_shape(shape: FaceShape, landmarks: np.ndarray, topology: FaceTopology) -> FaceShape:
    """``shape`` with its mesh moved in the image plane to ``landmarks`` (468, 2) by a reshaping warp: facing,
    normals and eye distance follow; its light and skin statistics stay (the warp moves pixels, not light)."""
    points = mesh_points(landmarks, shape.points[:, 2])
    return dataclasses.replace(shape, points=points, facing=triangle_facing(points, topology.triangles),
                               normals=vertex_normals(points, topology.triangles), interocular=max(interocular(points), 1.0))


def fine_detail(image: np.ndarray, points: np.ndarray) -> float:
    """How sharp a face is at its own scale: the RMS of its finest detail (grey minus its σ=1 blur, grey levels)
    with the face resampled to ``DETAIL_IOD`` pixels between the eyes. A sharp portrait measures about 4-10, a
    blurred photo or an upscaled video frame about 2; a small but sharp face measures sharp."""
    h, w = image.shape[:2]
    x1, y1 = (max(int(v), 0) for v in points[:, :2].min(0))
    x2, y2 = int(min(points[:, 0].max(), w)), int(min(points[:, 1].max(), h))
    scale = DETAIL_IOD / max(interocular(points), 1.0)
    if x2 - x1 < 4 or y2 - y1 < 4:
        return float("inf")
    crop = cv2.resize(image[y1:y2, x1:x2], None, fx=scale, fy=scale,
                      interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC)
    return _detail_energy(_grey(crop))


def prepare_source(image: np.ndarray, landmarks: np.ndarray, depth: np.ndarray | None, topology: FaceTopology) -> SourceFace:
    """Everything about a source photo that does not depend on the target."""
    shape = face_shape(image, landmarks, depth, topology)
    shading = evaluate_shading(shape.light, shape.normals)
    mirror = topology.mirror
    mirror_shading = shading[mirror]  # the mirrored texture was lit as the mirror vertices were
    mirrored_triangles = mirror[topology.triangles][:, [0, 2, 1]]  # mirrored triangles keep their orientation
    mirror_facing = triangle_facing(shape.points, mirrored_triangles)
    rings = [shape.points[RIGHT_EYE_RING], shape.points[LEFT_EYE_RING]]
    irises = find_irises(image, shape.points)
    not_face = not_face_probability(image, shape.points, topology, shading)
    in_front = in_front_of_lower_face(image, shape.points, topology, shading)
    image = without_catchlights(without_shine(image, shape.points, topology, shading, not_face), rings)
    halves = [image]
    while len(halves) < MAX_HALVINGS + 1 and min(halves[-1].shape[:2]) >= 64:
        halves.append(cv2.pyrDown(halves[-1]))
    shade = np.maximum(hair_shade(image, shape.points, topology, shading, not_face),
                       cast_shadow(image, shape.points, topology, shading, not_face))
    return SourceFace(image, shape, shading, mirror_shading, mirror_facing, not_face, irises,
                      opening_mask(image.shape, rings), shade, in_front, tuple(halves))


def _fill_triangles(shape: tuple[int, int], points: np.ndarray, triangles: np.ndarray, offset: tuple[int, int]) -> np.ndarray:
    """A uint8 mask of the given triangles (frame points shifted by ``offset``), in one fill: a mask for
    statistics, where the few pixels a folded mesh's overlaps leave out do not matter."""
    mask = np.zeros(shape, np.uint8)
    corners = np.round((points[triangles][..., :2] - offset) * 16).astype(np.int32)
    cv2.fillPoly(mask, list(corners), 1, cv2.LINE_8, 4)
    return mask


def _colour_density(pixels: np.ndarray) -> np.ndarray:
    """A smoothed, normalised 32×32×32 RGB histogram of (N, 3) uint8 pixels: a Gaussian of one bin, run one
    axis at a time (each pass brings the axis it smooths to the front, so the three land back in order)."""
    q = (pixels // 8).astype(np.int64)
    density = np.bincount((q[:, 0] * 32 + q[:, 1]) * 32 + q[:, 2], minlength=32**3).astype(np.float32).reshape(32, 32, 32)
    for _ in range(3):
        flat = cv2.sepFilter2D(density.reshape(32, 1024), -1, _UNIT_KERNEL, _BIN_GAUSSIAN, borderType=cv2.BORDER_REFLECT)
        density = np.ascontiguousarray(flat.reshape(32, 32, 32).transpose(2, 0, 1))
    return density / max(float(density.sum()), 1e-6)


def not_face_probability(image: np.ndarray, points: np.ndarray, topology: FaceTopology,
                         shading: np.ndarray | None = None) -> np.ndarray:
    """Per pixel of ``image``, how much its colour belongs to what surrounds the face (hair, backdrop) rather
    than to its skin: two colour histograms, plain skin inside the mesh and a band outside the face's upper
    half and sides, compared per pixel. Zero outside the face's box (never read there).

    ``shading``: the face's fitted light per vertex (linear RGB); inside the mesh each pixel is then judged as
    it would look under the skin's typical light, so skin in a side light's shadow is not taken for a dark
    backdrop or hair beside it."""
    h, w = image.shape[:2]
    out = np.zeros((h, w), np.float32)
    iod = max(interocular(points), 1.0)
    rect = bounding_rect(points[:, :2], image.shape, margin=int(0.4 * iod) + 2)
    if rect is None:
        return out
    x, y, rw, rh = rect
    crop = image[y : y + rh, x : x + rw]
    skin = _fill_triangles((rh, rw), points, topology.triangles[topology.triangles_in(("skin", "nose")) & ~topology.outer], (x, y))
    hull = cv2.convexHull(np.round(points[:, :2] - (x, y)).astype(np.int32))
    face = np.zeros((rh, rw), np.uint8)
    cv2.fillConvexPoly(face, hull, 1)
    grow = max(int(0.3 * iod), 2)
    band = cv2.dilate(face, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * grow + 1, 2 * grow + 1))) & (face == 0)
    band[max(int(points[MOUTH_LEVEL, 1].mean() - y), 0):, :] = 0  # below the mouth lies the neck: skin-coloured
    if skin.sum() < 32 or band.sum() < 32:
        return out
    judged = crop if shading is None else _evenly_lit(crop, points, topology, shading, (x, y), iod)
    p_skin = _colour_density(judged[skin > 0])
    p_out = _colour_density(crop[band > 0])
    q = (judged // 8).astype(np.int64)
    index = (q[..., 0] * 32 + q[..., 1]) * 32 + q[..., 2]
    a, b = p_out.ravel()[index], p_skin.ravel()[index]
    probability = a / np.maximum(a + b, 1e-9)
    # brows, lashes and lips look like hair to a colour model but lie inside the face as islands: keep only
    # what is connected to the hair and backdrop outside the face (a fringe, a strand, a backdrop patch)
    _, labels = cv2.connectedComponents((probability > 0.5).astype(np.uint8), connectivity=8)
    outside = np.unique(labels[(face == 0) & (labels > 0)])
    out[y : y + rh, x : x + rw] = np.where(np.isin(labels, outside), probability, 0.0)
    return out


def in_front_of_lower_face(image: np.ndarray, points: np.ndarray, topology: FaceTopology,
                           shading: np.ndarray) -> np.ndarray:
    """Per pixel of ``image``, 0..1: something held in front of the face below the mouth corners (a microphone, a
    phone, a sleeve), zero elsewhere. Down there dark hair is a beard, and a beard's colour lies between the skin's
    and grey; an object's colour may lie off that line (bluish, greenish, purple).

    Found on the inner lower face's skin by its colour averaged over ``IN_FRONT_SCALE`` there (a dark pixel's own
    chroma is mostly noise; the backdrop past an overhanging jaw stays out of the average), the fitted light evened
    out (a coloured side light is no object), in log-chroma: how far toward grey (a share of the skin's distance from
    it) and how far off the line. Then grown through what looks unlike the skin over the outer ring and the lower lip:
    the object's rim, which the average mixes with skin, and its part there. Lips are never where it starts: a dark
    skin's lower lip is often as purple as an object."""
    h, w = image.shape[:2]
    out = np.zeros((h, w), np.float32)
    iod = max(interocular(points), 1.0)
    # the skin's colour and level from its vertices, each brought to the skin's median light
    vertex_gain = _evening_gains(shading[topology.skin_vertices], shading, topology)
    colours = sample_linear(image, points[topology.skin_vertices, :2], 0.04 * iod) * vertex_gain
    colours = colours[np.isfinite(colours).all(1)]
    if len(colours) < 8:
        return out
    skin_chroma = np.median(_log_chroma(colours), axis=0)
    skin_level = float(np.median(colours.mean(-1)))
    length = float(np.linalg.norm(skin_chroma))
    # the line runs from grey to the skin's colour only where grey is grey: in a grey photo, or under a colour cast
    # (the skin's hue far from skin's usual one), a beard would be taken for an object, so nothing is looked for
    # (and no pixel is looked at: asked first, this saves a grey photo's faces the work below)
    turned = np.degrees(np.arccos(np.clip(skin_chroma @ SKIN_HUE / max(length, 1e-6), -1.0, 1.0)))
    if length < IN_FRONT_SKIN_CHROMA or turned > IN_FRONT_SKIN_CONE:
        return out
    below_mouth = topology.triangles_in(("skin",)) & ~topology.upper
    searched = below_mouth | topology.triangles_in(("lower-lip",))
    rect = bounding_rect(points[np.unique(topology.triangles[searched]), :2], image.shape, margin=2)
    if rect is None:
        return out
    x, y, rw, rh = rect
    lower = _fill_triangles((rh, rw), points, topology.triangles[below_mouth & ~topology.outer], (x, y)) > 0
    whole = _fill_triangles((rh, rw), points, topology.triangles[searched], (x, y)) > 0
    if lower.sum() < 32:
        return out
    gain, _ = _light_evening((rh, rw), points, topology, shading, (x, y), iod, searched)
    linear = to_linear(image[y : y + rh, x : x + rw]) * gain  # not clipped: a lit pixel brought up keeps its colour
    averaged, _ = masked_low_pass(linear, lower.astype(np.float32), IN_FRONT_SCALE * iod)
    chroma = _log_chroma(averaged)
    toward_skin = (chroma @ skin_chroma) / length**2  # 1 at the skin's colour, 0 at grey
    off_line = np.abs(chroma[..., 0] * skin_chroma[1] - chroma[..., 1] * skin_chroma[0]) / length
    grey_side, off = IN_FRONT_TOWARD_SKIN, IN_FRONT_OFF_LINE
    likeness = np.clip((grey_side[0] - toward_skin) / grey_side[1], 0.0, 1.0) * np.clip((off_line - off[0]) / off[1], 0.0, 1.0)
    likeness *= lower & (averaged.mean(-1) >= IN_FRONT_MIN_LEVEL * skin_level)  # black has no colour to judge
    seeds = likeness > 0.5
    if seeds.any():  # an object is no speck: tinted stubble leaves a few scattered pixels in the average
        _, labels, stats, _ = cv2.connectedComponentsWithStats(seeds.astype(np.uint8), connectivity=8)
        large = np.flatnonzero(stats[:, cv2.CC_STAT_AREA] >= (IN_FRONT_MIN_SIZE * iod) ** 2)
        seeds &= np.isin(labels, large[large > 0])
        likeness *= seeds
    if seeds.any():
        unlike = ((_log_chroma(linear) @ skin_chroma) / length**2 < IN_FRONT_GROW[1]) | (linear.mean(-1) < IN_FRONT_GROW[2] * skin_level)
        unlike &= whole
        step = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (3, 3))
        grown = seeds.astype(np.uint8)
        for _ in range(max(1, round(IN_FRONT_GROW[0] * iod))):
            grown = cv2.dilate(grown, step) & unlike
        rim = max(1, round(IN_FRONT_GROW[3] * iod))
        grown = cv2.dilate(grown, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * rim + 1, 2 * rim + 1)))
        likeness = np.maximum(likeness, grown > 0)
    out[y : y + rh, x : x + rw] = np.where(whole, likeness, 0.0)
    return out


def hair_shade(image: np.ndarray, points: np.ndarray, topology: FaceTopology, shading: np.ndarray,
               not_face: np.ndarray) -> np.ndarray:
    """Per pixel of ``image``, 0..1: forehead skin within ``HAIR_EDGE`` of the hair that falls across it and darker
    than the forehead's typical light (``HAIR_SHADE``), the fitted light taken out: the hair's shade and its stray
    fine hairs, which no colour test calls hair and which would show as a grey streak on another forehead. Worked
    out once per source photo, in its own pixels, so a video's frames all read the same map."""
    out = np.zeros(image.shape[:2], np.float32)
    iod, rect = _face_box(points, image.shape)
    if rect is None:
        return out
    x, y, w, h = rect
    hair = _hair_likeness(not_face[y : y + h, x : x + w])
    if not hair.any():
        return out
    radius = max(int(round(HAIR_EDGE * iod)), 1)
    near = cv2.dilate(hair, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1)))
    forehead = _fill_triangles((h, w), points, topology.triangles[above_eyes(topology) & topology.triangles_in(("skin",))],
                               (x, y)) > 0
    lit = _evenly_lit(image[y : y + h, x : x + w], points, topology, shading, (x, y), iod)
    light = to_linear(lit).mean(-1)
    plain = forehead & (hair == 0)
    if plain.sum() < 16:
        return out
    typical = float(np.median(light[plain]))
    level, ramp = HAIR_SHADE
    darker = np.clip((level * typical - light) / max(ramp * typical, 1e-6), 0.0, 1.0)
    shade = np.where(forehead, near * darker * (1.0 - hair), 0.0).astype(np.float32)
    out[y : y + h, x : x + w] = cv2.GaussianBlur(shade, (0, 0), max(0.01 * iod, 0.5))
    return out


def cast_shadow(image: np.ndarray, points: np.ndarray, topology: FaceTopology, shading: np.ndarray,
                not_face: np.ndarray) -> np.ndarray:
    """Per pixel of ``image``, 0..1: plain skin much darker than the same place on the other side of the face
    (``CAST_SHADOW``), the fitted light taken out and both compared at ``CAST_SHADOW_SCALE``: a side light's
    cast shadow (the nose's on the far cheek, the brow's in an eye socket), which a smooth fitted light cannot
    explain and which would lay a dark band across another face. Only where both sides face the camera and
    neither is hair; once per source photo, in its own pixels."""
    out = np.zeros(image.shape[:2], np.float32)
    iod, rect = _face_box(points, image.shape)
    if rect is None:
        return out
    x, y, w, h = rect
    tri = topology.triangles
    mirrored = topology.mirror[tri][:, [0, 2, 1]]  # mirrored triangles keep their orientation
    low = OWN_FACING[0]
    plain = topology.triangles_in(("skin", "nose")) & ~topology.outer
    usable = plain & (triangle_facing(points, tri) > low) & (triangle_facing(points, mirrored) > low)
    ids = rasterise_ids(points[:, :2], tri, usable, rect)
    inside = ids != NO_TRIANGLE
    if np.count_nonzero(inside) < 64:
        return out
    lit = to_linear(_evenly_lit(image[y : y + h, x : x + w], points, topology, shading, (x, y), iod)).mean(-1)
    weight = inside.astype(np.float32)
    scale = max(CAST_SHADOW_SCALE * iod, 0.5)
    light = cv2.GaussianBlur(lit * weight, (0, 0), scale) / np.maximum(cv2.GaussianBlur(weight, (0, 0), scale), 1e-3)
    mirror_affines = DestinationTriangles.of(points[:, :2], tri).affines_to(points[topology.mirror][tri][..., :2])
    mx, my = _Grid(np.where(inside, ids, 0).astype(np.intp), x, y, 1).coords(mirror_affines)
    mx -= x  # where each pixel's mirror point lies, in the crop's pixels
    my -= y
    mirror_light = cv2.remap(light, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    mirror_seen = cv2.remap(weight, mx, my, cv2.INTER_NEAREST, borderMode=cv2.BORDER_CONSTANT, borderValue=0.0)
    hair = _hair_likeness(not_face[y : y + h, x : x + w])
    mirror_hair = cv2.remap(hair, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=1.0)
    level, ramp = CAST_SHADOW
    darker = np.clip((level - light / np.maximum(mirror_light, 1e-4)) / ramp, 0.0, 1.0)
    shadow = (darker * weight * mirror_seen * (1.0 - hair) * (1.0 - mirror_hair)).astype(np.float32)
    out[y : y + h, x : x + w] = cv2.GaussianBlur(shadow, (0, 0), max(0.01 * iod, 0.5))
    return out


def without_shine(image: np.ndarray, points: np.ndarray, topology: FaceTopology, shading: np.ndarray,
                  not_face: np.ndarray) -> np.ndarray:
    """``image`` with the shine on its face's plain skin given back the colour of the skin around it.

    Shine is skin brighter than the skin around it (``SHINE``) and paler, its colour moved toward neutral
    (``SHINE_PALER``), the fitted light taken out and both compared at ``SHINE_SCALE``: a specular highlight on
    a nose tip or a cheek, or a rim light along the face's edge. It is the source photo's light, not its face:
    copied, it shows as a white or bluish spot that the target's warmer tone sets off and its light lifts
    further. Its pixels take the surrounding skin's colour at their own level, less ``SHINE_GLARE`` of their
    excess over it. Once per source photo; the image itself is returned where nothing shines."""
    iod, rect = _face_box(points, image.shape)
    if rect is None:
        return image
    x, y, w, h = rect
    tri = topology.triangles
    plain = topology.triangles_in(("skin", "nose")) & ~topology.outer & (triangle_facing(points, tri) > 0)
    ids = rasterise_ids(points[:, :2], tri, plain, rect)
    skin = (ids != NO_TRIANGLE) & (_hair_likeness(not_face[y : y + h, x : x + w]) < 0.5)
    if np.count_nonzero(skin) < 64:
        return image
    crop = image[y : y + h, x : x + w]
    lit = to_linear(_evenly_lit(crop, points, topology, shading, (x, y), iod))
    level, chroma = lit.mean(-1, keepdims=True), _log_chroma(lit)
    scale = max(SHINE_SCALE * iod, 1.0)
    # the skin around is measured on skin of the face's usual colour and not dark: a lock of hair or a mark beside
    # it would make plain skin next to it look brighter and paler than its surroundings
    usual = (np.linalg.norm(chroma - np.median(chroma[skin], axis=0), axis=-1) < SKIN_CHROMA_LIMIT) & (
        level[..., 0] > 0.5 * float(np.median(level[skin])))
    shine = np.zeros(skin.shape, np.float32)
    for _ in range(2):  # the second time, the skin around leaves out what the first found (a broad highlight)
        around, _ = masked_low_pass(np.concatenate([level, chroma], axis=-1), skin & usual & (shine < 0.5), scale)
        skin_chroma = around[..., 1:]
        # the share of the way from the skin's colour to grey the pixel's colour has moved
        colourful = np.linalg.norm(skin_chroma, axis=-1)
        moved = -((chroma - skin_chroma) * skin_chroma).sum(-1) / np.maximum(colourful, 1e-4)
        toward_grey = moved / np.clip(colourful, *SHINE_COLOURFUL)
        brighter = np.clip((level[..., 0] / np.maximum(around[..., 0], 1e-4) - SHINE[0]) / SHINE[1], 0.0, 1.0)
        shine = (brighter * np.clip((toward_grey - SHINE_PALER[0]) / SHINE_PALER[1], 0.0, 1.0) * skin).astype(np.float32)
    if not shine.any():
        return image
    shine = np.clip(cv2.GaussianBlur(shine, (0, 0), max(0.01 * iod, 0.5)), 0.0, 1.0)
    clear = skin & (shine < 0.05)
    linear = to_linear(crop)
    own_level = linear.mean(-1, keepdims=True)
    colour, density = masked_low_pass(linear, clear, scale)
    clear_level, _ = masked_low_pass(level, clear, scale)
    # the glare: the share of the pixel's level (fitted light out) above its clear surroundings'
    excess = np.maximum(level - clear_level, 0.0) / np.maximum(level, 1e-6)
    wanted = own_level * (1.0 - SHINE_GLARE * excess)
    diffuse = colour / np.maximum(colour.mean(-1, keepdims=True), 1e-6) * wanted
    amount = (shine * np.clip(density / 0.3, 0.0, 1.0))[..., None]  # only where enough clear skin around is known
    out = image.copy()
    out[y : y + h, x : x + w] = to_srgb(linear + (diffuse - linear) * amount)
    return out


def _face_box(points: np.ndarray, shape: tuple[int, ...]) -> tuple[float, tuple[int, int, int, int] | None]:
    """A face's inter-ocular distance (at least a pixel) and its frame-clipped box (None outside the frame)."""
    return max(interocular(points), 1.0), bounding_rect(points[:, :2], shape, margin=2)


def _hair_likeness(not_face: np.ndarray) -> np.ndarray:
    """0..1: how surely a source pixel is hair or backdrop, ramped in over ``HAIR_TO_MIRROR``'s span from its start."""
    start, _, span = HAIR_TO_MIRROR
    return np.clip((not_face - start) / span, 0.0, 1.0)


def _evenly_lit(crop: np.ndarray, points: np.ndarray, topology: FaceTopology, shading: np.ndarray,
                offset: tuple[int, int], iod: float) -> np.ndarray:
    """``crop`` with the pixels inside the mesh brought to the skin's median light (each triangle's mean
    shading, smoothed; a gain of at most SHADE_GAIN_LIMIT either way); pixels outside the mesh unchanged."""
    gain, inside = _light_evening(crop.shape[:2], points, topology, shading, offset, iod)
    if not inside.any():
        return crop
    return np.where(inside[..., None], to_srgb(to_linear(crop) * gain), crop)


def _light_evening(size: tuple[int, int], points: np.ndarray, topology: FaceTopology, shading: np.ndarray,
                   offset: tuple[int, int], iod: float, chosen: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The linear gain (h, w, 3) that brings each pixel inside the mesh (its ``chosen`` triangles, all by default) to
    the skin's median light (see ``_evenly_lit``; 1 elsewhere), and the mask of pixels inside it."""
    h, w = size
    triangles = topology.triangles if chosen is None else topology.triangles[chosen]
    facing = triangle_facing(points, triangles) > 0
    ids = rasterise_ids(points[:, :2], triangles, facing, (offset[0], offset[1], w, h))
    inside = ids != NO_TRIANGLE
    per_triangle = _evening_gains(shading[triangles].mean(1), shading, topology)
    sharp = np.where(inside[..., None], per_triangle[np.where(inside, ids, 0)], 1.0).astype(np.float32)
    return cv2.GaussianBlur(sharp, (0, 0), 0.05 * iod), inside


def _evening_gains(levels: np.ndarray, shading: np.ndarray, topology: FaceTopology) -> np.ndarray:
    """Per row of ``levels`` (fitted light, linear RGB), the gain that brings it to the skin's median light
    (``shading`` over the skin vertices), at most SHADE_GAIN_LIMIT either way."""
    typical = np.median(shading[topology.skin_vertices], axis=0)
    return np.clip(typical / np.maximum(levels, 1e-4), 1 / SHADE_GAIN_LIMIT, SHADE_GAIN_LIMIT).astype(np.float32)


def _log_chroma(rgb: np.ndarray) -> np.ndarray:
    """log(R/G), log(B/G) per pixel: colour without brightness."""
    rgb = np.maximum(rgb, 1e-4)
    return np.stack([np.log(rgb[..., 0] / rgb[..., 1]), np.log(rgb[..., 2] / rgb[..., 1])], axis=-1)


@dataclass(frozen=True)
class RenderSettings:
    """The user's choices that shape one face's rendering."""

    regions: tuple[str, ...] = REGIONS  # regions taken from the source; the rest stays the target's
    relight: bool = True
    blur: float = 0.3
    padding: tuple[int, int, int, int] = (0, 0, 0, 0)
    weight: float = 1.0


@dataclass(frozen=True)
class _Change:
    """What rendering does to a rectangle of the frame: ``change`` added to it, ``cover`` the share of each
    pixel that is the source's (1 where only the source shows, 0 where the target is kept)."""

    rect: tuple[int, int, int, int]  # x, y, w, h
    change: np.ndarray  # (h, w, 3) float32
    cover: np.ndarray  # (h, w) float32


def working_scale(target: FaceShape, source: SourceFace) -> float:
    """The scale at which a face is rendered: no finer than the source photo's own resolution (a small
    source on a big target has no detail to lose), nor than MAX_WORKING_IOD between the eyes (beyond it the
    target's own clipped grain carries the finest detail, and the time stays bounded), never above full size."""
    wanted = min(max(source.shape.interocular, MIN_WORKING_IOD), MAX_WORKING_IOD)
    return float(min(1.0, wanted / max(target.interocular, 1.0)))


def render_face(frame: np.ndarray, target: FaceShape, source: SourceFace, topology: FaceTopology,
                settings: RenderSettings, occluded: np.ndarray | None = None) -> bool:
    """Draw ``source`` onto ``target`` in ``frame`` (RGB uint8, changed in place); False if nothing was drawn.

    ``occluded``: an optional frame-sized bool mask of what stays in front of the face (glasses, hands).
    A face bigger than its source (or than MAX_WORKING_IOD) is rendered at that scale on a reduced copy of its region and
    brought back: where the source covers the face the upscaled rendering replaces the target, whose own
    finer detail is kept only as clipped grain (pores and noise, not the outlines of its wrinkles and
    features, so nothing of the target ghosts through); elsewhere the target keeps every pixel.
    """
    scale = working_scale(target, source)
    if scale > 0.85:
        done = _render(frame, target, source, topology, settings, occluded)
        if done is None:
            return False
        x, y, w, h = done.rect
        region = frame[y : y + h, x : x + w]
        region[:] = np.clip(region + done.change + 0.5, 0, 255).astype(np.uint8)
        return True
    rect = bounding_rect(target.points[:, :2], frame.shape, margin=4)
    if rect is None:
        return False
    x, y, w, h = rect
    size = (max(int(round(w * scale)), 2), max(int(round(h * scale)), 2))
    sx, sy = size[0] / w, size[1] / h
    region = frame[y : y + h, x : x + w]
    small = cv2.resize(region, size, interpolation=cv2.INTER_AREA)
    points = (target.points - (x, y, 0.0)) * (sx, sy, (sx + sy) / 2)
    irises = None
    if target.irises is not None:
        right, left = (None if iris is None else ((iris - (x, y)) * (sx, sy)).astype(np.float32) for iris in target.irises)
        irises = (right, left)
    shrunk = dataclasses.replace(target, points=points.astype(np.float32), interocular=target.interocular * (sx + sy) / 2,
                                 irises=irises)
    small_occluded = None
    if occluded is not None:
        small_occluded = cv2.resize(occluded[y : y + h, x : x + w].view(np.uint8), size, interpolation=cv2.INTER_NEAREST) > 0
    done = _render(small, shrunk, source, topology, settings, small_occluded)
    if done is None:
        return False
    change = np.zeros(small.shape, np.float32)
    cover = np.zeros(small.shape[:2], np.float32)
    cx, cy, cw, ch = done.rect
    change[cy : cy + ch, cx : cx + cw] = done.change
    cover[cy : cy + ch, cx : cx + cw] = done.cover
    base = region.astype(np.float32)
    coarse = cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC).astype(np.float32)
    result = np.asarray(cv2.resize(change, (w, h), interpolation=cv2.INTER_CUBIC), np.float32)
    cover_up = cv2.resize(cover, (w, h), interpolation=cv2.INTER_LINEAR)
    detail = np.subtract(base, coarse, out=coarse)
    lost = np.subtract(detail, target_grain(detail, cover_up > 0.5), out=detail)  # what the grain leaves out
    lost *= spread(cover_up)
    # base + change − cover · (detail − grain), worked in place: the region is a large float image
    result += base
    result -= lost
    result += 0.5
    region[:] = np.clip(result, 0, 255, out=result).astype(np.uint8)
    return True


def target_grain(detail: np.ndarray, where: np.ndarray) -> np.ndarray:
    """The target's finest detail (h, w, 3), clipped and with its lines left out: pores, grain and compression noise
    that a softer source lacks, without the outlines of the target's own wrinkles, scars and features.

    Grain is measured by its robust spread over ``where``; a line is where the detail's local RMS stands well above
    that spread (``GRAIN_LINE``): it and its rim give nothing, rather than a faint copy at the clip's depth."""
    if not where.any():
        return np.zeros_like(detail)
    # every third pixel each way, or sparser on a big face: some tens of thousands are plenty for a robust spread
    stride = max(3, int(np.sqrt(detail.shape[0] * detail.shape[1] / GRAIN_SAMPLE)))
    sample = detail[::stride, ::stride][where[::stride, ::stride]]
    noise = max(float(np.median(np.abs(sample if sample.size else detail[where]))) / 0.6745, 0.5)
    grey = cv2.cvtColor(detail, cv2.COLOR_RGB2GRAY)  # (numpy's mean over the channels costs ten times as much)
    # RMS over 5 × 5 pixels; the box filter's running sums leave a flat patch after textured skin (a blown
    # highlight, a black border) a hair below zero, and the root of that is NaN, drawn as black specks
    local = cv2.sqrt(cv2.max(cv2.blur(cv2.multiply(grey, grey), (5, 5)), 0.0))
    grain_like = np.clip((GRAIN_LINE[1] * noise - local) / ((GRAIN_LINE[1] - GRAIN_LINE[0]) * noise), 0.0, 1.0)
    limit = GRAIN_CLIP * noise
    grain = np.clip(detail, -limit, limit)
    grain *= spread(grain_like)
    return grain


def _render(frame: np.ndarray, target: FaceShape, source: SourceFace, topology: FaceTopology,
            settings: RenderSettings, occluded: np.ndarray | None) -> _Change | None:
    """The change that draws ``source`` onto ``target`` in ``frame`` (not modified), None if nothing is drawn."""
    tri = topology.triangles
    dst = target.points[:, :2]
    rect = bounding_rect(dst, frame.shape)
    if rect is None:
        return None
    x, y, w, h = rect
    own_f, mirror_f = source.shape.facing, source.mirror_facing
    low, high = OWN_FACING
    own_weight = np.where(own_f >= high, 1.0, np.clip(0.5 + (own_f - mirror_f) / (high - low), 0.0, 1.0))
    solved = DestinationTriangles.of(dst, tri)
    front = (target.facing > 0) & solved.ok
    eyes, kept_rings = _drawn_eyes(topology, target.points)
    drawn = front & (target.facing > DRAW_FACING) & ~(topology.opening & ~(eyes[0] | eyes[1]))  # not the mouth's
    drawn &= (own_f > low) | (mirror_f > low)  # the regions the user keeps are cut at the end, so the
    # light and tone worked out below do not depend on that choice
    if drawn.sum() < 8:
        return None
    order = np.argsort(-target.points[tri, 2].mean(1))  # far triangles first: nearer ones overwrite them
    ids = rasterise_ids(dst, tri, front, rect, order=order)
    silhouette = ids != NO_TRIANGLE
    safe = np.where(silhouette, ids, 0).astype(np.intp)
    covered = silhouette & drawn[safe]
    # a steep triangle enclosed by drawn ones (a nostril's wing, an eye's inner corner) is drawn too: left out,
    # its sliver would show the target through, and the mask's inset would widen it into a hole
    covered |= fill_holes(covered) & silhouette & ~topology.opening[safe]
    if np.count_nonzero(covered) < 16:
        return None
    src = source.shape.points[:, :2]
    magnify = target.interocular / max(source.shape.interocular, 1.0)
    interp = cv2.INTER_CUBIC if magnify > 1.2 else cv2.INTER_LINEAR
    # the texture is sampled at full size, in sRGB as stored; everything smooth (light, tone, what is skin,
    # what is foreign, the fill) is worked out on a grid of about ANALYSIS_IOD pixels between the eyes and
    # brought back to full size as smooth fields
    full = _Grid(safe, x, y, 1)
    step = max(1, int(target.interocular / ANALYSIS_IOD + STEP_TOLERANCE))
    coarse = _Grid(safe[::step, ::step], x, y, step)
    size = (coarse.ids.shape[1], coarse.ids.shape[0])

    def shrink(image: np.ndarray) -> np.ndarray:
        return image if step == 1 else cv2.resize(image, size, interpolation=cv2.INTER_AREA)

    def grow(field: np.ndarray) -> np.ndarray:
        grown = field if step == 1 else cv2.resize(field, (w, h), interpolation=cv2.INTER_LINEAR)
        return grown.reshape(h, w, -1)

    target_irises = list(target.irises if target.irises is not None else find_irises(frame, target.points))
    own_affines = _look_as_target(solved.affines_to(src[tri]), ids, rect, eyes, target_irises, source, mirrored=False)
    # a face far smaller than the source reads a halved copy (no aliasing that the detail step would blur away)
    level = 0
    while level + 1 < len(source.halves) and magnify * 2 ** (level + 1) <= 1.0:
        level += 1
    image = source.halves[level] if source.halves else source.image
    texture = full.sample(image, _halved(own_affines, level), covered, interp)
    own_maps = coarse.coords(own_affines)  # where each grid pixel reads the source: its masks are read there too
    not_face, inside = _sample_mask(source, own_maps)
    covered_c = covered[::step, ::step]
    b1, b2 = coarse.coords(solved.barycentric())
    np.clip(b1, 0.0, 1.0, out=b1)  # pixels on a triangle's rim may fall a little outside it
    np.clip(b2, 0.0, 1.0 - b1, out=b2)
    per_vertex = np.concatenate([source.shading, source.mirror_shading,
                                 evaluate_shading(target.light, target.normals), hairline_reach(topology)[:, None],
                                 outer_cheeks(topology)[:, None], brow_band(topology)[:, None], eye_band(topology)[:, None],
                                 socket_band(topology)[:, None], np.sign(topology.canonical[:, :1]),
                                 socket_surround(topology)[:, None]], axis=1)
    v = per_vertex[tri[coarse.ids]]  # (h, w, 3 corners, 16): one gather for every per-vertex quantity
    lights = v[..., 0, :] + b1[..., None] * (v[..., 1, :] - v[..., 0, :]) + b2[..., None] * (v[..., 2, :] - v[..., 0, :])
    source_light, mirror_light, target_light = lights[..., 0:3], lights[..., 3:6], lights[..., 6:9]
    reach, cheeks, brows, round_eyes = lights[..., 9], lights[..., 10], lights[..., 11], lights[..., 12]
    sockets, side, surround = lights[..., 13], lights[..., 14], lights[..., 15]
    albedo = to_linear(shrink(texture)) / source_light
    weight_own = own_weight[safe].astype(np.float32)
    mixed: np.ndarray = texture
    in_eyes = covered & (eyes[0] | eyes[1])[safe]
    eye_seen = full.sample(source.eye_openings[..., None], own_affines, in_eyes, cv2.INTER_NEAREST)[..., 0] > 0
    regions = topology.region[coarse.ids]
    mirror_affines = _look_as_target(solved.affines_to(src[topology.mirror][tri]), ids, rect, eyes, target_irises,
                                     source, mirrored=True)
    mirror_maps = coarse.coords(mirror_affines)
    mirror_not_face, mirror_inside = _sample_mask(source, mirror_maps)
    shade = cv2.remap(source.shade, *own_maps, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0.0)
    in_front = cv2.remap(source.in_front, *own_maps, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0.0)
    mirror_shade = cv2.remap(source.shade, *mirror_maps, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0.0)
    # a foreshortened side keeps its own texture where the mirror side's is in a shade this side lacks
    mirrorable = _MIRRORABLE[regions]
    lit_own = mirror_shade * (1.0 - _hair_likeness(not_face)) * mirrorable
    if lit_own.any():
        weight_own = np.maximum(weight_own, grow(lit_own.astype(np.float32))[..., 0] * (own_f > low)[safe])
    # skin under a strand of the source's hair, or in a shade, takes its mirror side's texture where that side is clear
    clear_side = _clearer_mirror(not_face, mirror_not_face, mirror_inside & mirrorable, shade)
    if clear_side.any():
        usable = (mirror_f > low)[safe].astype(np.float32)
        weight_own = weight_own * (1.0 - grow(clear_side.astype(np.float32))[..., 0] * usable)
    if (weight_own[covered] < 0.999).any():
        blend = cv2.GaussianBlur(np.where(covered, weight_own, 1.0), (0, 0), 0.04 * target.interocular)
        blend = np.where(covered, blend, 1.0).astype(np.float32)
        mirrored = full.sample(image, _halved(mirror_affines, level), covered & (blend < 0.999), interp)
        blend_c = blend[::step, ::step]
        inside = np.where(blend_c > 0.5, inside, mirror_inside)
        not_face = not_face * blend_c + mirror_not_face * (1 - blend_c)
        mirror_in_front = cv2.remap(source.in_front, *mirror_maps, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0.0)
        in_front = in_front * blend_c + mirror_in_front * (1 - blend_c)
        own_share_c = spread(blend_c)
        albedo = albedo * own_share_c + to_linear(shrink(mirrored)) / mirror_light * (1 - own_share_c)
        # the mirrored side was lit as the mirror vertices were: bring it to this side's light (sRGB gain)
        ratio = grow(np.power(source_light / mirror_light, 1 / 2.2).astype(np.float32))
        own_share = spread(blend)
        mixed = texture * own_share + mirrored * ratio * (1 - own_share)
        mirror_seen = full.sample(source.eye_openings[..., None], mirror_affines, in_eyes & (blend < 0.5), cv2.INTER_NEAREST)
        eye_seen = np.where(blend < 0.5, mirror_seen[..., 0] > 0, eye_seen)
    mixed = _fill_eyes(mixed, in_eyes & ~eye_seen)
    upper = covered_c & topology.upper[coarse.ids]
    tails = covered_c & brow_tails(topology)[coarse.ids]
    # a brow is never hair, even where it reaches past the mesh's brow outline (a thick or low-set one) ... but
    # for its outer ends (``tails``), where hair at the temple reaches in; nor are lashes and liner round the eyes
    # (made up in her hair's colour, they were refilled from the dark lashes beside them: dark blocks)
    kept = ((brows >= BAND_KEPT) & ~brow_ends(topology)[coarse.ids]) | (round_eyes >= BAND_KEPT)
    foreign = ~inside | _foreign(albedo, source, regions, upper & ~kept, not_face, tails, in_front)
    valid = covered_c & ~foreign
    if valid.sum() < 4:
        return None
    donors = valid & _SKIN[regions]
    region = frame[y : y + h, x : x + w]
    lit_c = albedo * source_light  # the source texture as lit in its photo, on the coarse grid
    tone = _Tone.identity(lit_c.shape[:2])
    kept_light = np.ones(covered_c.shape, np.float32)
    socket_light = np.ones(covered_c.shape, np.float32)
    if settings.relight:
        target_lin = to_linear(shrink(region))
        target_even = target_lin / target_light  # the target's skin colours with its fitted light taken out
        band = covered_c & shade_band(topology)[coarse.ids]
        # not beside the eyes and brows either, whose lashes, sockets and hairs are dark on their own
        features = _EYES_AND_BROWS[regions].astype(np.uint8)
        margin = max(int(round(FEATURE_MARGIN * target.interocular / step)), 1)
        around = cv2.dilate(features, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * margin + 1,) * 2)) > 0
        band &= ~around
        kept_light = target_shade(target_even / max(target.skin_luma, 1e-4),
                                  albedo / max(source.shape.skin_luma, 1e-4), band, valid, around & covered_c,
                                  target.interocular / step)
        # the tone follows the target's lit skin (its cast shadows are laid over the result below), and not its skin
        # round the mouth where that is a beard's (darker than its usual level, the fitted light taken out)
        guides = donors & (kept_light > 0.95)
        zone = guides & beard_zone(topology)[coarse.ids]
        if zone.any() and np.median(target_even[zone].mean(-1)) < BEARD_DARK * target.skin_luma:
            guides &= ~zone
        tone = _tone_change(lit_c, albedo, source, source_light, target, target_light, target_lin, guides,
                            covered_c, cheeks, brows, step)
        socket_light = _socket_light(albedo, target_even, sockets, surround, side, valid & ~in_eyes[::step, ::step],
                                     target.interocular / step)
    lab = _in_shade(srgb_to_lab(mixed), socket_light, grow)
    toned_lab = tone.apply(lab, grow)
    # the eyes take the change of light but keep their own hue: a brown iris on a pale face stays brown
    # a greyscale photo gets grey eyes; an eye in a dimmer light loses colour with its lightness as a change of
    # light does (CIELAB chroma scales with L* + 16): kept, a blue iris in a shade would glow neon
    ex, ey, ew, eh = cv2.boundingRect(in_eyes.view(np.uint8))  # worked on the eyes' box: they are a small part
    if ew:
        # around the eyes (their band beyond the lid line: lashes, liner, the lids' shade) what is darker than the
        # skin is lightened as it is in them (below), fading out over the band: lifted as the skin is, a dim source's
        # lash line went grey just outside its dark eye, which showed as a cut-out with stepped edges on a pale face
        rim = int(np.ceil(EYE_REACH * target.interocular)) + 2
        ringed = (slice(max(ey - rim, 0), ey + eh + rim), slice(max(ex - rim, 0), ex + ew + rim))
        skin_base, skin_lift = grow(tone.base)[ringed][..., 0], grow(tone.lightness)[ringed][..., 0]
        beyond = grow(round_eyes)[ringed][..., 0] * (covered & ~in_eyes)[ringed]
        toned_lab[ringed][..., 0] = _darks_lifted_like_light(lab[ringed][..., 0], toned_lab[ringed][..., 0], skin_base,
                                                             skin_lift, beyond)
        box = (slice(ey, ey + eh), slice(ex, ex + ew))
        top, left = ey - ringed[0].start, ex - ringed[1].start
        in_ringed = (slice(top, top + eh), slice(left, left + ew))  # the eyes' box inside ``ringed``
        eye_lab, eye_toned, eye = lab[box], toned_lab[box], in_eyes[box]
        eye_toned[eye, 0] = _lifted_like_light(eye_lab[eye, 0], eye_toned[eye, 0], skin_base[in_ringed][eye],
                                               skin_lift[in_ringed][eye])
        light_change = np.clip((eye_toned[eye, :1] + 16.0) / (eye_lab[eye, :1] + 16.0), 0.0, EYE_CHROMA_GAIN)
        eye_toned[eye, 1:] = tone.colourfulness() * eye_lab[eye, 1:] * light_change
    toned = lab_to_srgb(_in_shade(toned_lab, kept_light, grow))
    if not valid[covered_c].all():
        toned_c = lab_to_srgb(_in_shade(tone.apply(srgb_to_lab(to_srgb(lit_c)), lambda field: field), kept_light,
                                        lambda field: field[..., None]))
        # skin at the edge of the source's hair is tinted by it: a refill counts such donors for less, none at
        # DONOR_NOT_FACE (counted whole, an auburn lock's edge filled a temple with a brown blot)
        clear = donors * np.clip(1.0 - not_face / DONOR_NOT_FACE, 0.0, 1.0) ** 2
        clear = clear if clear.sum() >= 4 else donors.astype(np.float32)
        filled = fill_from_surroundings(toned_c.astype(np.float32), covered_c & ~valid, clear, 0.05 * target.interocular / step)
        # a soft edge around each refilled patch: grid-sized blocks would show at full size
        holes = cv2.GaussianBlur((covered_c & ~valid).astype(np.float32), (0, 0), 0.7)
        share = grow(holes)
        shares = spread(share)
        toned = np.clip(toned * (1.0 - shares) + grow(filled) * shares + 0.5, 0, 255).astype(np.uint8)
        # on the outer cheeks and jaw only: elsewhere (a forehead under a fringe, round the eyes) the target's grain
        # carries its own lines and likeness
        toned = _with_grain(toned, region, share[..., 0] * grow(cheeks)[..., 0])
    # on the outer cheeks the finest detail is the target's: there its own skin meets the swap, and the source's pores
    # beside its smooth skin (or a smooth source beside its pores) drew an edge of their own where the change fades out
    overlay = _cheek_grain(_match_detail(toned, region, covered), region, covered * grow(cheeks)[..., 0])
    chosen = topology.triangles_in(settings.regions)[safe]
    mask = covered & chosen
    _cut_openings(mask, dst, rect, target.interocular, [INNER_LIPS, *kept_rings])
    if occluded is not None:
        mask &= ~occluded[y : y + h, x : x + w]
    soft = feather(mask, max(target.interocular * 2.5, 8.0), settings.blur, settings.padding) * grow(reach)[..., 0]
    area = silhouette.copy()  # what may change: the visible face, less the regions the user keeps
    if len(settings.regions) < len(REGIONS):
        area &= chosen
    inward = edge_ramp(area, max(EDGE_RAMP * target.interocular, min(MIN_EDGE_RAMP, EDGE_RAMP_LIMIT * target.interocular)))
    base = region.astype(np.float32)
    over = select(covered & ~_catchlights_in(frame, dst, rect, eyes), overlay.astype(np.float32), base)
    # the source's finest detail fades in with the change: toward the silhouette, where the change fades out,
    # a crisp texture would still draw an edge of its own
    smooth = cv2.GaussianBlur(over, (0, 0), 1.0)
    over = smooth + (over - smooth) * spread(inward)
    blended = multiband_blend(base, over, soft, pyramid_levels(h, w, target.interocular * 2))
    share = inward * settings.weight
    return _Change(rect, (blended - base) * spread(share), soft * share)


def _catchlights_in(frame: np.ndarray, points: np.ndarray, rect: tuple[int, int, int, int],
                    eyes: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """A bool mask over ``rect`` of the target's own catchlights in the eyes drawn from the source: the light of
    the target's scene, kept over the source's eyes (whose own catchlights were painted out)."""
    x, y, w, h = rect
    out = np.zeros((h, w), bool)
    for drawn, ring in zip(eyes, (RIGHT_EYE_RING, LEFT_EYE_RING)):
        found = catchlights(frame, points[ring]) if drawn.any() else None
        if found is None:
            continue
        spots, sx, sy = found
        ox, oy = sx - x, sy - y  # the eye's box inside the rect (it lies inside: the rect bounds the mesh)
        x1, y1, x2, y2 = max(ox, 0), max(oy, 0), min(ox + spots.shape[1], w), min(oy + spots.shape[0], h)
        if x2 > x1 and y2 > y1:
            out[y1:y2, x1:x2] |= spots[y1 - oy : y2 - oy, x1 - ox : x2 - ox]
    return out


def _socket_light(source_even: np.ndarray, target_even: np.ndarray, sockets: np.ndarray, surround: np.ndarray,
                  side: np.ndarray, seen: np.ndarray, iod: float) -> np.ndarray:
    """Per pixel, the gain that gives the source's eye sockets the target's light there (1 elsewhere).

    A brow's ridge and a deep-set eye keep a photo's light off the lids and from under the eye; the fitted light is
    smooth and leaves that shade in the source's texture, so a side- or top-lit source drew dark rings round the
    eyes of a face lit flat by a flash (on a small face, a black smudge for an eye). Per eye, each face's socket is
    measured against the skin round it (``*_even``: linear RGB with the fitted light taken out; the upper quartile
    over the ``seen`` pixels of each, so brow hairs and lashes do not count), and where the target's socket is the
    lighter of the two, the source's is lightened by ``SOCKET_LIFT_SHARE`` of the ratio in log light (at most
    ``SOCKET_LIFT_LIMIT``; never past the skin round it: no glow), fading out across the socket's band
    (``sockets``, 0..1). All arrays are on the coarse grid (``iod`` grid pixels between the eyes)."""
    gain = np.ones(sockets.shape, np.float32)
    ring = (sockets > 0.35) & (sockets < 0.95) & seen
    around = (surround > 0.2) & seen
    greys = (source_even.mean(-1), target_even.mean(-1))
    for right in (True, False):
        this_side = side < 0 if right else side > 0
        zone, skin = ring & this_side, around & this_side
        if zone.sum() < 8 or skin.sum() < 8:
            continue
        source_ratio, target_ratio = (_upper_quartile(grey[zone]) / max(_upper_quartile(grey[skin]), 1e-6)
                                      for grey in greys)
        ratio = float(np.clip(min(target_ratio, 1.0) / max(source_ratio, 1e-3), 1.0, SOCKET_LIFT_LIMIT))
        if ratio > 1.0:
            here = this_side & (sockets > 0)
            lift = ratio**SOCKET_LIFT_SHARE - 1.0
            gain[here] = 1.0 + lift * np.clip(sockets[here] / 0.5, 0.0, 1.0)
    return cv2.GaussianBlur(gain, (0, 0), max(0.05 * iod, 0.5)) if (gain > 1.0).any() else gain


def _upper_quartile(values: np.ndarray) -> float:
    """The upper quartile of a 1-D array (the nearest rank: a partial sort, not a full percentile)."""
    k = (3 * (len(values) - 1)) // 4
    return float(np.partition(values, k)[k])


def _in_shade(lab: np.ndarray, kept_light: np.ndarray, grow: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """CIELAB colours (changed in place) under ``kept_light`` of their light (a coarse-grid field that ``grow``
    brings to ``lab``'s size, (h, w, 1); over 1 where light is added): L* + 16 and the chroma both scale with the
    cube root of a change of light."""
    if (np.abs(kept_light - 1.0) > 0.001).any():
        cube = grow(np.cbrt(kept_light))  # a smooth field: its cube root taken before it is brought to full size
        lab[..., :1] = (lab[..., :1] + 16.0) * cube - 16.0
        lab[..., 1:] *= spread(cube, 2)
    return lab


def _clearer_mirror(not_face: np.ndarray, mirror_not_face: np.ndarray, where: np.ndarray,
                    shade: np.ndarray) -> np.ndarray:
    """0..1 on the coarse grid: how much a pixel should take its mirror side's texture because its own may be
    hair or backdrop (``not_face`` from ``HAIR_TO_MIRROR[0]`` up) and the mirror side's is clearly less so, or is
    the shade beside that hair (``shade``, 0..1, see :func:`hair_shade`) and the mirror side is no hair."""
    start, margin, span = HAIR_TO_MIRROR
    own = _hair_likeness(not_face)
    better = np.clip((not_face - mirror_not_face - margin) / span, 0.0, 1.0)
    shaded = shade * np.clip((start - mirror_not_face) / (0.5 * start), 0.0, 1.0)
    return np.where(where, np.maximum(own * better, shaded), 0.0).astype(np.float32)


def _halved(affines: np.ndarray, times: int) -> np.ndarray:
    """Target → source maps (T×2×3) made to read the source halved ``times`` times (pixel centres kept)."""
    if times == 0:
        return affines
    scale = np.float32(0.5**times)
    out = affines * scale
    out[..., 2] += np.float32(0.5) * scale - np.float32(0.5)
    return out


def _drawn_eyes(topology: FaceTopology, points: np.ndarray) -> tuple[tuple[np.ndarray, np.ndarray], list[list[int]]]:
    """The triangles inside the right and the left eye's lid line where the source's eye is drawn, and the
    lid rings of the eyes too small for that (a few pixels across: any softening smears a drawn eye into a
    blot, so the target's own eye stays)."""
    drawn, kept = [], []
    for name, ring in (("right-eye", RIGHT_EYE_RING), ("left-eye", LEFT_EYE_RING)):
        inside = topology.opening & topology.triangles_in((name,))
        if eye_width(points[ring]) < MIN_DRAWN_EYE:
            inside = np.zeros_like(inside)
            kept.append(ring)
        drawn.append(inside)
    return (drawn[0], drawn[1]), kept


def _look_as_target(affines: np.ndarray, ids: np.ndarray, rect: tuple[int, int, int, int],
                    eyes: tuple[np.ndarray, np.ndarray], target_irises: list[np.ndarray | None], source: SourceFace,
                    mirrored: bool) -> np.ndarray:
    """``affines`` (T×2×3, target pixel → source pixel) with each eye's opening shifted in the source so the
    source's iris lands where the target's is: the source's eyes, looking where the target looks.

    An eye whose iris is not seen on both faces keeps the plain mesh mapping; the shift is bounded
    (``GAZE_SHIFT``) so a mistaken iris cannot pull the lids into the eye."""
    shifted = affines.copy()
    x, y, w, h = rect
    rings = (RIGHT_EYE_RING, LEFT_EYE_RING)
    for side in (0, 1):
        source_side = 1 - side if mirrored else side
        seen, wanted = target_irises[side], source.irises[source_side]
        if seen is None or wanted is None or not eyes[side].any():
            continue
        col, row = int(round(seen[0] - x)), int(round(seen[1] - y))
        at = ids[row, col] if 0 <= col < w and 0 <= row < h else NO_TRIANGLE
        # the map of the eye triangle under the iris; near the lid line, the eye's triangles' mean map
        mapping = affines[at] if at != NO_TRIANGLE and eyes[side][at] else affines[eyes[side]].mean(0)
        lands = mapping @ np.array([seen[0], seen[1], 1.0], np.float32)
        width = eye_width(source.shape.points[rings[source_side]])
        bound = width * np.asarray(GAZE_SHIFT, np.float32)
        shift = np.clip(wanted - lands, -bound, bound)
        shifted[eyes[side], :, 2] += shift.astype(np.float32)
    return shifted


def _fill_eyes(texture: np.ndarray, holes: np.ndarray) -> np.ndarray:
    """``texture`` with the eye pixels a shifted source eye does not reach filled from the eye around them
    (its white and iris, never the target's own eye: two irises of different colours would show)."""
    if not holes.any():
        return texture
    ys, xs = np.nonzero(holes)
    y1, y2, x1, x2 = max(ys.min() - 4, 0), ys.max() + 5, max(xs.min() - 4, 0), xs.max() + 5
    patch = np.clip(texture[y1:y2, x1:x2] + 0.5, 0, 255).astype(np.uint8)
    filled = texture.copy()
    filled[y1:y2, x1:x2] = cv2.inpaint(patch, holes[y1:y2, x1:x2].astype(np.uint8), 3, cv2.INPAINT_TELEA)
    return filled


@dataclass(frozen=True)
class _Grid:
    """Pixels of a face's region, every ``step``-th one, each with the triangle covering it."""

    ids: np.ndarray  # (h, w) intp triangle per pixel (0 where none)
    x: int
    y: int
    step: int

    def sample(self, image: np.ndarray, affines: np.ndarray, where: np.ndarray, interp: int) -> np.ndarray:
        """``image`` read through each pixel's affine, at the ``where`` pixels only (zero elsewhere)."""
        h, w = self.ids.shape
        flat = np.flatnonzero(where)
        ys, xs = np.divmod(flat, w)
        a = affines.reshape(len(affines), 6)[self.ids.reshape(-1)[flat]]
        gx = (self.x + self.step * xs).astype(np.float32)
        gy = (self.y + self.step * ys).astype(np.float32)
        n = len(flat)
        out = np.zeros((h * w, image.shape[2]), image.dtype)
        if n:
            rows = -(-n // 1024)  # remap's maps are images: lay the points out 1024 to a row
            mx = np.zeros(rows * 1024, np.float32)
            my = np.zeros(rows * 1024, np.float32)
            mx[:n] = a[:, 0] * gx + a[:, 1] * gy + a[:, 2]
            my[:n] = a[:, 3] * gx + a[:, 4] * gy + a[:, 5]
            read = cv2.remap(image, mx.reshape(rows, 1024), my.reshape(rows, 1024), interp, borderMode=cv2.BORDER_REPLICATE)
            out[flat] = read.reshape(rows * 1024, -1)[:n]
        return out.reshape(h, w, -1)

    def coords(self, affines: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Each pixel mapped by its triangle's 2×3 affine: (map_x, map_y) float32."""
        h, w = self.ids.shape
        gx = (self.x + self.step * np.arange(w, dtype=np.float32))[None, :]
        gy = (self.y + self.step * np.arange(h, dtype=np.float32))[:, None]
        a = affines.reshape(len(affines), 6)[self.ids]
        return a[..., 0] * gx + a[..., 1] * gy + a[..., 2], a[..., 3] * gx + a[..., 4] * gy + a[..., 5]


def _sample_mask(source: SourceFace, maps: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """The source's not-face probability and the in-image mask through a map."""
    mx, my = maps
    sh, sw = source.image.shape[:2]
    not_face = cv2.remap(source.not_face, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=1.0)
    return not_face, (mx >= 0) & (my >= 0) & (mx <= sw - 1) & (my <= sh - 1)


def _relative_luma(albedo: np.ndarray, face: FaceShape) -> np.ndarray:
    """Per pixel, the albedo's grey level as a share of ``face``'s typical skin's."""
    return np.maximum(albedo.mean(-1), 1e-4) / max(face.skin_luma, 1e-4)


def _skin_likeness(albedo: np.ndarray, face: FaceShape, smooth: float) -> np.ndarray:
    """0..1 per pixel: how much a pixel of ``face`` is skin rather than hair (brows, lashes, stubble, beard):
    dark or far off the skin's colour; smoothed over ``smooth`` pixels so the change of treatment is gradual."""
    distance = np.linalg.norm(_log_chroma(albedo) - face.skin_chroma, axis=-1)
    luma = _relative_luma(albedo, face)
    by_colour = np.clip(1.0 - (distance - 0.5) / 0.3, 0.0, 1.0)  # rosy cheeks and lips are still skin
    by_colour = np.where(luma < 0.4, 1.0, by_colour)  # the colour of dark pixels is mostly noise
    by_light = np.clip((luma - 0.06) / 0.1, 0.0, 1.0)
    likeness = (by_colour * by_light).astype(np.float32)
    return cv2.GaussianBlur(likeness, (0, 0), max(smooth, 0.5)) if smooth > 0 else likeness


def _not_dark(albedo: np.ndarray, face: FaceShape, smooth: float) -> np.ndarray:
    """0..1 per pixel: 0 where ``face``'s albedo is under ``HAIR_DARKNESS`` of its skin's, smoothed over ``smooth``
    pixels. In a brow such a pixel is hair, whatever its colour: given all of a paler target's lift it turns ash
    grey, lighter and greyer than hair of its colour looks on that skin."""
    luma = _relative_luma(albedo, face)
    light = np.clip((luma - HAIR_DARKNESS[0]) / HAIR_DARKNESS[1], 0.0, 1.0).astype(np.float32)
    return cv2.GaussianBlur(light, (0, 0), max(smooth, 0.5))


@dataclass(frozen=True)
class _Tone:
    """How the source texture's CIELAB colours move to the target's skin tone and light (coarse-grid fields).

    Lightness takes an offset, exact at the source skin's local lightness (``base``); beyond it, toward the end
    the offset moves to, the distance to that end (white or black) shrinks in proportion instead, so a
    highlight lifted with its skin is compressed rather than clipped to flat white. Colour is moved as
    chromaticity, (a, b) per unit of lightness:
    each pixel's chromaticity keeps its difference from the source skin's local chromaticity, scaled by
    ``gain``, around the target skin's (bent toward neutral where the target's skin is less chromatic, see
    :meth:`moved_chroma`), and is then multiplied by the new lightness. A colour cast so
    scales with light as it does in a photograph: dark stubble and brows change colour in proportion to
    their lightness instead of being dyed, and a rosy source onto a pale or greyscale target loses that
    share of its colour variation instead of overshooting into cyan."""

    lightness: np.ndarray  # (h, w, 1) CIELAB L offset
    base: np.ndarray  # (h, w, 1) the source skin's local CIELAB L, where the offset is taken whole
    source_chroma: np.ndarray  # (h, w, 2) the source skin's local (a, b) / L
    target_chroma: np.ndarray  # (h, w, 2) the target skin's local (a, b) / L
    gain: float  # share of the source's chromaticity variation kept

    @classmethod
    def identity(cls, shape: tuple[int, int]) -> _Tone:
        """No change of tone (colour transfer off)."""
        zeros = np.zeros(shape + (2,), np.float32)
        return cls(np.zeros(shape + (1,), np.float32), np.full(shape + (1,), 50.0, np.float32), zeros, zeros, 1.0)

    def colourfulness(self) -> float:
        """1 where the target's skin is at least half as chromatic as the source's, falling to 0 on a greyscale
        photo (a fifth of that or less): the share of their own colour the eyes keep."""
        source = float(np.median(np.hypot(self.source_chroma[..., 0], self.source_chroma[..., 1])))
        target = float(np.median(np.hypot(self.target_chroma[..., 0], self.target_chroma[..., 1])))
        if source <= 0:
            return 1.0
        return float(np.clip((target / source - 0.15) / 0.35, 0.0, 1.0))

    def shifted(self, lightness: np.ndarray, grow: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
        """CIELAB ``lightness`` (full size, (h, w, 1)) moved by the offset, compressed toward its end."""
        offset, base = grow(self.lightness), grow(self.base)
        toward_white = 100.0 - (100.0 - lightness) * np.maximum(100.0 - base - offset, 0.0) / np.maximum(100.0 - base, 1.0)
        toward_black = lightness * np.maximum(base + offset, 0.0) / np.maximum(base, 1.0)
        lifted = offset >= 0
        return np.where(lifted & (lightness > base), toward_white,
                        np.where(~lifted & (lightness < base), toward_black, lightness + offset))

    def moved_chroma(self, chroma: np.ndarray, grow: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
        """Chromaticity ``chroma`` (full size, (h, w, 2)) moved from the source skin's to the target skin's.

        Per channel, the difference from the source skin's value is kept, scaled by ``gain``. Where the target's
        skin is less chromatic than the source's, that shift would push a neutral pixel (black brows, grey
        stubble, a shadowed lid) past neutral, into blue or green; there, between the source skin's value and
        neutral, a curve takes over: in proportion to the skins' ratio far from the skin's value (a brow half as
        chromatic as the source's skin stays half as chromatic as the target's), bending near it to the slope
        ``gain`` at it (no kink, so the skin's mean stays the target's, and its fine colour variation is kept). A
        pixel of the opposite hue is never made more chromatic than it was; one more chromatic than the source
        skin keeps a shrunken difference. Where the target's skin lies past neutral from the source's (a colour
        cast: a cool photo's skin reads bluish), the shift takes over again, fully ``PAST_NEUTRAL`` beyond: the
        curve, anchored at true neutral, drew the source's highlights as neutral patches on the bluish skin, pale
        yellow blotches to the eye."""
        source, target = grow(self.source_chroma), grow(self.target_chroma)
        kept = target + self.gain * (chroma - source)
        paler = (source > CHROMA_ANCHOR) & (target < source)
        s = np.where(paler, source, 1.0)
        level = np.maximum(target, 0.0)  # the curve's target: at most neutral
        slope = np.minimum(self.gain, 2.0 * level / s)  # at most twice the ratio: the curve keeps rising
        ratio = level / s
        u = chroma / s  # u⁴(u − 1): 0 at neutral and at the skin, slope 1 at the skin, under 0.06 below u = 0.6
        curved = np.where(chroma > 0, ratio * chroma + (slope - ratio) * s * np.square(np.square(u)) * (u - 1.0),
                          np.minimum(ratio, 1.0) * chroma)
        # beyond the skin's value (a red blemish, a flushed nostril) the difference shrinks with the square root
        # of the skins' ratio: kept whole, it flares into a blotch on the paler skin; scaled by the full ratio,
        # the seam and identity figures lose as much as the blotches gain
        richer = level + self.gain * np.sqrt(ratio) * (chroma - source)
        beyond = np.clip(-target / PAST_NEUTRAL, 0.0, 1.0)
        bent = np.where(chroma < source, curved, richer)
        return np.where(paler, bent + beyond * (kept - bent), kept)

    def apply(self, lab: np.ndarray, grow: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
        """``lab`` (full size) under the target's tone; ``grow`` brings a coarse field to ``lab``'s size."""
        lightness = self.shifted(lab[..., :1], grow)
        moved = self.moved_chroma(_chromaticity(lab), grow)
        return np.concatenate([lightness, moved * spread(np.maximum(lightness, 0.0), 2)], axis=-1)


def _lifted_like_light(lightness: np.ndarray, toned: np.ndarray, base: np.ndarray, offset: np.ndarray) -> np.ndarray:
    """CIELAB lightness of an eye's pixels under a lift of the skin's lightness (``base`` to ``base + offset``):
    what is darker than the skin is brightened as light brightens it, by the skin's gain in linear luminance; the
    rest keeps its ``toned`` value. Taken as an offset, as skin takes it, a lift greyed the pupils and turned
    brown irises amber when a dark or dim source went onto a pale face (a pupil at L* 5 went to 35; by the gain,
    to 16)."""
    gain = _luminance(base + offset) / np.maximum(_luminance(base), 1e-4)
    darker = (offset > 0) & (lightness < base)
    return np.where(darker, _lightness(_luminance(lightness) * gain), toned).astype(np.float32)


def _darks_lifted_like_light(lightness: np.ndarray, toned: np.ndarray, base: np.ndarray, offset: np.ndarray,
                             share: np.ndarray) -> np.ndarray:
    """``toned`` (CIELAB lightness of ``lightness`` under the skin's lift) with the pixels darker than the skin
    lifted as :func:`_lifted_like_light` lifts them, in ``share`` (0..1, the same shape) of the way."""
    out = toned.copy()
    near = share > 0
    out[near] += (_lifted_like_light(lightness[near], toned[near], base[near], offset[near]) - toned[near]) * share[near]
    return out


def _luminance(lightness: np.ndarray) -> np.ndarray:
    """Relative luminance Y (0..1) of CIELAB lightness L* (0..100)."""
    lightness = np.asarray(lightness, np.float32)
    cube = ((lightness + 16.0) / 116.0) ** 3
    return np.where(lightness > 8.0, cube, lightness / 903.3)


def _lightness(luminance: np.ndarray) -> np.ndarray:
    """CIELAB lightness L* of relative luminance Y (the inverse of :func:`_luminance`)."""
    luminance = np.clip(luminance, 0.0, 1.0)
    return np.where(luminance > 0.008856, 116.0 * np.cbrt(luminance) - 16.0, 903.3 * luminance)


def _chromaticity(lab: np.ndarray) -> np.ndarray:
    """(a, b) per unit of CIELAB lightness."""
    return lab[..., 1:] / np.maximum(lab[..., :1], CHROMA_DARK_FLOOR)


def _tone_change(texture: np.ndarray, albedo: np.ndarray, source: SourceFace, source_light: np.ndarray,
                 target: FaceShape, target_light: np.ndarray, target_lin: np.ndarray, skin_area: np.ndarray,
                 face: np.ndarray, cheeks: np.ndarray, brows: np.ndarray, step: int) -> _Tone:
    """The tone change that puts the source texture under the target's light and skin tone.

    The smooth skin-colour fields (each face's fitted light, evaluated at its normals) give the change
    everywhere; where plain skin is seen on both faces, their actual low-pass colours refine it region by
    region (a shadowed jaw, stubble's shade, make-up), and on the outer cheeks (``cheeks``, 0..1) finer still:
    a smiling target's lit cheeks or a side light's shadow are the target's. Lightness moves by an offset, not
    a gain (compressed toward white or black beyond the skin's level, see :class:`_Tone`): a dark skin's
    texture going pale keeps its contrast instead of having its noise amplified. What is not skin (brows,
    lashes, stubble; in ``brows``, a 0..1 field (see :func:`brow_band`), whatever is dark) takes half the change of
    lightness. The face-wide change is averaged over the drawn face (``face``) only: beyond it the per-vertex fields
    hold no face. All arrays are on the coarse grid (``step`` frame pixels per grid pixel).
    """
    iod = target.interocular / step
    source_skin = _skin_likeness(albedo, source.shape, 0.03 * iod)
    target_skin = _skin_likeness(target_lin / target_light, target, 0.03 * iod)
    source_lab = srgb_to_lab(to_srgb(texture))
    # each face's fitted light is its skin's colour as lit: the means wherever no plain skin is seen on both
    source_mean = srgb_to_lab(to_srgb(source_light))
    target_mean = srgb_to_lab(to_srgb(target_light))
    both = skin_area & (source_skin > 0.6) & (target_skin > 0.6)
    gain = 1.0
    if both.sum() >= 16:
        target_lab = srgb_to_lab(to_srgb(target_lin))
        sigma = LOCAL_TONE_SCALE * iod
        source_lp, density = masked_low_pass(source_lab, both, sigma)
        target_lp, _ = masked_low_pass(target_lab, both, sigma)
        if cheeks.any():  # the outer cheeks follow finer, where plain skin is seen on both near enough
            source_fine, fine_density = masked_low_pass(source_lab, both, CHEEK_TONE_SCALE * iod)
            target_fine, _ = masked_low_pass(target_lab, both, CHEEK_TONE_SCALE * iod)
            fine = spread(cheeks * np.clip(fine_density / 0.3, 0.0, 1.0))
            source_lp = fine * source_fine + (1 - fine) * source_lp
            target_lp = fine * target_fine + (1 - fine) * target_lp
        trust = spread(np.clip(density / 0.3, 0.0, 1.0))
        source_mean = trust * source_lp + (1 - trust) * source_mean
        target_mean = trust * target_lp + (1 - trust) * target_mean
        spreads = [float(np.median(np.abs(_chromaticity(lab[both]) - _chromaticity(lp[both])))) + CHROMA_NOISE
                  for lab, lp in ((source_lab, source_lp), (target_lab, target_lp))]
        gain = float(np.clip(spreads[1] / spreads[0], CHROMA_GAIN_FLOOR, 1.0))
    # in the brows, what is dark is hair whatever its colour (elsewhere it may be a deep-set eye's shadow, which is
    # the source's light: taken whole, a top-lit source's sockets went smoky on a pale target)
    not_dark = 1.0 - brows * (1.0 - _not_dark(albedo, source.shape, 0.03 * iod))
    skin = np.minimum(source_skin, not_dark)[..., None]
    change = (target_mean - source_mean)[..., 0]
    # all of the face-wide change of lightness (the face meets the neck and forehead), a share of the finer one
    # (the source's own shading of cheekbones and nose is an identity cue), all of it on the outer cheeks
    broad = masked_low_pass(change[..., None], face, BROAD_TONE_SCALE * iod)[0][..., 0]
    share = FINE_LIGHTNESS_SHARE + (1 - FINE_LIGHTNESS_SHARE) * cheeks
    lightness = broad + share * (change - broad)
    lightness = ((skin + HAIR_LIGHTNESS_SHARE * (1 - skin)) * lightness[..., None]).astype(np.float32)
    return _Tone(lightness, source_mean[..., :1].astype(np.float32), _chromaticity(source_mean).astype(np.float32),
                 _chromaticity(target_mean).astype(np.float32), gain)


def _foreign(albedo: np.ndarray, source: SourceFace, regions: np.ndarray, upper: np.ndarray,
             not_face: np.ndarray, tails: np.ndarray, in_front: np.ndarray) -> np.ndarray:
    """Pixels of the warped source that are not its face: on the upper face's skin (``upper``: where head hair
    and backdrop reach in; below it a beard is the face's own), coloured like the hair and backdrop around it or
    far off the skin's colour; lower down, only what is much further off it (auburn or blond hair falling past
    the mouth: no beard is) and what is held in front of the face there (``in_front``); on the brows' outer ends
    (``tails``: brows are otherwise never hair), what the colour model ties to the hair outside the face; on the
    lips, bright and colourless (teeth)."""
    chroma = _log_chroma(albedo)
    luma = _relative_luma(albedo, source.shape)
    plain = _SKIN[regions]
    skin = upper & plain
    distance = np.linalg.norm(chroma - source.shape.skin_chroma, axis=-1)
    coloured = (distance > SKIN_CHROMA_LIMIT) & (luma > 0.5)  # paint, dyed hair, a coloured light; not a shadow
    foreign = skin & (coloured | (not_face > NOT_FACE_LIMIT))  # brows are the face's own, never hair ...
    foreign |= tails & (not_face > NOT_FACE_LIMIT)  # ... but for their outer ends, where hair at the temple reaches
    # lower down a beard is the face's own, but no beard is far off the skin's colour: long red or blond hair is
    foreign |= plain & (distance > HAIR_CHROMA_LIMIT) & (luma > 0.15)
    lips = _LIPS[regions]
    foreign |= (plain | lips) & (in_front > 0.5)
    if lips.sum() > 16:
        lip_redness = float(np.median(chroma[lips][:, 0]))
        lip_luma = float(np.median(luma[lips]))
        foreign |= lips & (luma > 1.6 * lip_luma) & (chroma[..., 0] < lip_redness - 0.1)
    kernel = np.ones((3, 3), np.uint8)
    cleaned = cv2.morphologyEx(foreign.astype(np.uint8), cv2.MORPH_OPEN, kernel)
    return cv2.dilate(cleaned, kernel).astype(bool)


def _cut_openings(mask: np.ndarray, dst: np.ndarray, rect: tuple[int, int, int, int], iod: float,
                  rings: list[list[int]]) -> None:
    """Remove the target's own openings (the mouth's interior, eyes too small to redraw: their polygons,
    slightly grown) from the mask."""
    x, y, _, _ = rect
    hole = opening_mask(mask.shape, [dst[ring] - (x, y) for ring in rings])
    grow = max(int(round(0.015 * iod)), 1)
    hole = cv2.dilate(hole, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * grow + 1, 2 * grow + 1)))
    mask &= hole == 0


def _match_detail(overlay: np.ndarray, region: np.ndarray, covered: np.ndarray) -> np.ndarray:
    """The overlay, softened where its finest detail exceeds ``DETAIL_MARGIN`` of the target's (a crisp photo on
    a soft video frame), both measured over ``covered``.

    The blur σ is found by bisection on the measured detail, not by a formula (faces are not white noise).
    The overlay is measured and blurred set in the target: it is blank beyond ``covered``, and that edge
    would count as detail (every face was softened far below its target) and a blur would darken its rim."""
    overlay = select(covered, overlay, region)
    grey = _grey(overlay)
    want = _detail_energy(_grey(region), covered) * DETAIL_MARGIN
    if want <= 0 or _detail_energy(grey, covered) <= want:
        return overlay
    return cv2.GaussianBlur(overlay, (0, 0), _softening(grey, covered, want))


def _with_grain(toned: np.ndarray, region: np.ndarray, refilled: np.ndarray) -> np.ndarray:
    """``toned`` with the target's own grain (its finest detail, strong edges clipped: pores and noise, not its
    lines) added where it is refilled (``refilled``, 0..1): a refill is smooth, and showed as a plastic band where
    the source's hair covered its cheeks; the target's face lies there anyway."""
    if not refilled.any():
        return toned
    base = region.astype(np.float32)
    grain = target_grain(base - cv2.GaussianBlur(base, (0, 0), 1.5), refilled > 0.5)
    return np.clip(toned + grain * spread(refilled) + 0.5, 0, 255).astype(np.uint8)


def _cheek_grain(overlay: np.ndarray, region: np.ndarray, cheeks: np.ndarray) -> np.ndarray:
    """``overlay`` with its detail finer than ``CHEEK_GRAIN_SIGMA`` swapped for the target's grain where ``cheeks``
    (0..1) says: skin texture that is no one's likeness, while the creases and shading there stay the source's."""
    rect = cv2.boundingRect((cheeks > 0).view(np.uint8))  # the lower face's sides: about half of its box
    if rect[2] == 0:
        return overlay
    pad = int(np.ceil(4 * CHEEK_GRAIN_SIGMA))  # the blurs read this far beyond the cheeks
    x1, y1 = max(rect[0] - pad, 0), max(rect[1] - pad, 0)
    x2, y2 = min(rect[0] + rect[2] + pad, cheeks.shape[1]), min(rect[1] + rect[3] + pad, cheeks.shape[0])
    over, base = overlay[y1:y2, x1:x2].astype(np.float32), region[y1:y2, x1:x2].astype(np.float32)
    share = spread(cheeks[y1:y2, x1:x2])
    smooth = cv2.GaussianBlur(over, (0, 0), CHEEK_GRAIN_SIGMA)
    grain = target_grain(base - cv2.GaussianBlur(base, (0, 0), CHEEK_GRAIN_SIGMA), share[..., 0] > 0.5)
    out = overlay.copy()
    out[y1:y2, x1:x2] = np.clip(smooth + (over - smooth) * (1.0 - share) + grain * share + 0.5, 0, 255)
    return out


def _grey(image: np.ndarray) -> np.ndarray:
    """8-bit RGB → float32 grey (the detail measures work on it)."""
    return cv2.cvtColor(image, cv2.COLOR_RGB2GRAY).astype(np.float32)


def _detail_energy(grey: np.ndarray, where: np.ndarray | None = None) -> float:
    """RMS of the finest detail (grey minus its σ=1 blur) over ``where`` (everywhere when None)."""
    detail = grey - cv2.GaussianBlur(grey, (0, 0), 1.0)
    if where is None:
        return float(np.sqrt(np.mean(detail**2)))
    return float(np.sqrt((detail[where] ** 2).mean())) if where.any() else 0.0


def _softening(grey: np.ndarray, where: np.ndarray, wanted: float) -> float:
    """The blur σ (0.4..3 pixels) under which ``grey``'s finest detail over ``where`` comes to ``wanted``."""
    low, high = SOFTENING_RANGE
    if _detail_energy(cv2.GaussianBlur(grey, (0, 0), high), where) >= wanted:
        return high
    for _ in range(6):  # bisection in log σ: the detail falls steadily as the blur grows
        middle = float(np.sqrt(low * high))
        if _detail_energy(cv2.GaussianBlur(grey, (0, 0), middle), where) > wanted:
            low = middle
        else:
            high = middle
    return float(np.sqrt(low * high))

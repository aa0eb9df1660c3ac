"""The built-in 3D-aware swapper (model ``mesh3d``): the source face rendered onto the target's 468-point mesh
(see ``mesh_render``).

The target keeps its pose, expression, gaze, mouth interior, silhouette and light; the source gives the
skin, brows, lids, eyes, nose, lips and their texture. Per track, the target's fitted light is smoothed over
time so a video's face does not flicker. What lies in front of the target's face (glasses frames, hair
across it: ``occluders``; with ``--face-mask-types occlusion`` also what the XSeg model finds) stays in
front; a source photo's glasses frames are painted out before its texture is taken.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import cv2
import numpy as np

from swapface.faces.face import Face
from swapface.faces.mesh_topology import LEFT_EYE_RING, RIGHT_EYE_RING
from swapface.geometry.eyes import from_eye_units, in_eye_units
from swapface.geometry.face_topology import REGIONS, FaceTopology, face_topology
from swapface.geometry.reshape import (
    FeatureLayout,
    placed_features,
    reshaped_points,
    warp_inside,
    warp_to_shape,
)
from swapface.geometry.shading import evaluate_shading
from swapface.models.templates import warp_face
from swapface.options import SwapOptions
from swapface.processors.base import SourceIdentity
from swapface.processors.masks import OcclusionMasker
from swapface.processors.mesh_render import (
    FaceShape,
    RenderSettings,
    SourceFace,
    face_shape,
    find_irises,
    fine_detail,
    moved_shape,
    prepare_source,
    render_face,
)
from swapface.processors.mesh_swapper import closest_source, pose_signature
from swapface.processors.occluders import (
    CROP_EXTENT,
    HELD_CROP_EXTENT,
    FaceCrop,
    Occluders,
    estimate_occluders,
    eye_alignment,
    from_visibility,
    glasses_frames,
    hair_across,
    held_in_front,
    masks_to_frame,
    remove_frames,
)

LIGHT_SMOOTHING = 0.35  # share of a new frame's fitted light in a track's running estimate
MOVE_SMOOTHING = 0.2  # share of a new frame's feature move in a track's running estimate
GAZE_SMOOTHING = 0.5  # share of a new frame's iris positions in a track's running estimate
# Degrees of turn (``landmark_turn``) beyond which a target face is left unchanged: drawn, it smears (a doubled nose
# edge, a smudged eye). A face seen nearly in profile in a stage clip read 44-61 from frame to frame (its mesh's own
# depth read 22-60: it flattens strong turns); one turned about 45 degrees, which renders well, read up to 45.
MAX_TARGET_YAW = 50.0
PNP_FOCAL = 5000.0  # pixels: the pose fit's camera, far from a face a few hundred pixels wide (orthographic)
TURN_HOLD = 30  # frames a video track stays unchanged after a reading beyond the limit (its readings swing ±10°)
TURN_FADE = 8  # frames over which its swap then fades back in, so it does not pop in
SMALL_SOURCE_IOD = 40.0  # pixels between the eyes under which a source photo is called small
TURNED_SOURCE_YAW = 30.0  # degrees
BLURRED_SOURCE_DETAIL = 3.0  # fine detail (``fine_detail``, grey levels) under which a source photo is called blurred
OCCLUDER_REFRESH = 4  # frames of a track between fresh estimates of its occluders (glasses, hair, what is held)
OPENING_MARGIN = 2  # rings of triangles round the eyes and mouth that a feature move redraws with them
OCCLUDER_CROP = ("ffhq_512", 256)  # the aligned crop the XSeg occluder model sees (forehead and fringe included)


def around_openings(topology: FaceTopology, rings: int = OPENING_MARGIN) -> np.ndarray:
    """Per triangle: in the eyes, the mouth or the lips, or within ``rings`` rings of neighbours of them."""
    chosen = topology.triangles_in(("left-eye", "right-eye", "mouth", "upper-lip", "lower-lip"))
    for _ in range(rings):
        touched = np.zeros(int(topology.triangles.max()) + 1, bool)
        touched[topology.triangles[chosen]] = True
        chosen = touched[topology.triangles].any(1)
    return chosen


def landmark_turn(points: np.ndarray, topology: FaceTopology) -> float:
    """How far (degrees, either way) a face is turned about the vertical, as its 2D landmarks (468, 2+) show it:
    the rigid canonical face posed to fit them (``cv2.solvePnP``, a camera far enough to be orthographic). The
    mesh's own depth flattens strong turns; where its points fall in the image does not. Landmarks that cannot be
    posed (collapsed, not finite) read 90: no face to draw."""
    canon = topology.canonical[::2].astype(np.float64)  # every other vertex: as good a fit (within 1°) at half the cost
    canon -= canon.mean(0)
    image = points[::2, :2].astype(np.float64)
    image -= image.mean(0)
    if not np.isfinite(image).all() or float(np.ptp(image, axis=0).min()) < 1.0:
        return 90.0
    camera = np.array([[PNP_FOCAL, 0.0, 0.0], [0.0, PNP_FOCAL, 0.0], [0.0, 0.0, 1.0]])
    ok, rotation, _ = cv2.solvePnP(canon, image, camera, None, flags=cv2.SOLVEPNP_ITERATIVE)
    if not ok:
        return 90.0
    rot, _ = cv2.Rodrigues(rotation)
    return abs(float(np.degrees(np.arctan2(rot[0, 2], rot[2, 2]))))


class Mesh3DSwapper:
    """Frame processor ``face_swapper`` with model ``mesh3d``."""

    name = "face_swapper"
    needs_source = True
    whole_frame = False

    def __init__(self, options: SwapOptions, models_dir: Path | None = None) -> None:
        self.options = options
        self.topology = face_topology()
        types = tuple(options.face_mask_types)
        regions = tuple(options.face_mask_regions) if "region" in types else REGIONS
        self.settings = RenderSettings(
            regions=regions, relight=options.color_transfer == "on", blur=float(options.face_mask_blur),
            padding=tuple(options.face_mask_padding), weight=float(options.face_swapper_weight),  # type: ignore[arg-type]
        )
        self._source_key: int | None = None
        self._sources: list[SourceFace] = []
        self._signatures: list[np.ndarray] = []
        self._light: dict[int, np.ndarray] = {}
        self._gaze: dict[int, tuple[np.ndarray | None, ...]] = {}
        # track → (frames since estimated, its glasses frames and hair across it on its crop, what is held before it
        # on its lower crop)
        self._masks: dict[int, tuple[int, np.ndarray, np.ndarray, np.ndarray]] = {}
        self._moves: dict[int, np.ndarray] = {}  # track → its features' running move, in eye distances
        # track → frames since its mesh last read beyond MAX_TARGET_YAW, counted on while it is out of sight
        self._since_turned: dict[int, int] = {}
        self.notices: list[str] = []
        self.occlusion: OcclusionMasker | None = None
        if "occlusion" in types:
            self.occlusion = OcclusionMasker(options, models_dir)
        self._files_checked = False
        self._layout = FeatureLayout.of(self.topology, tuple(r for r in REGIONS if r not in regions))
        # the target shows through the drawn face in its eyes' and mouth's openings: only they and the skin
        # round them are warped (the rest is drawn over, its grain kept where it was; a region the user keeps
        # does not move, so the warp meets it without a step)
        self._shown = around_openings(self.topology)

    def require_files(self) -> None:
        """Fail once, up front, naming the occluder model file when ``occlusion`` is asked for and it is missing."""
        if self.occlusion is not None and not self._files_checked:
            from swapface.models.store import require

            require([self.occlusion.model.entry.name], self.occlusion.model.models_dir)
        self._files_checked = True

    def _notice(self, text: str) -> None:
        if text not in self.notices:
            self.notices.append(text)

    def _prepare(self, source: SourceIdentity) -> None:
        if self._source_key == id(source):
            return
        self._sources, self._signatures = [], []
        for number, (image, face) in enumerate(zip(source.images, source.faces), start=1):
            if face.landmarks is None:
                raise ValueError("the mesh swapper needs source faces with landmarks")
            prepared = prepare_source(image, face.landmarks, face.depth, self.topology)
            glasses = estimate_occluders(image, prepared.shape.points, self.topology, hair=False)
            if glasses.glasses:
                prepared = prepare_source(remove_frames(image, glasses), face.landmarks, face.depth, self.topology)
                self._notice(f"source image #{number}: the face wears glasses; their frames are painted out from the "
                             "skin around them — a photo without glasses gives a truer face")
            self._sources.append(prepared)
            self._signatures.append(pose_signature(face))
            self._check_source(number, prepared)
        self._source_key = id(source)
        self.reset()  # what was smoothed per track belonged to the previous source

    def _check_source(self, number: int, prepared: SourceFace) -> None:
        """One-line warnings about source photos that limit the result, with what to use instead."""
        iod = prepared.shape.interocular
        if iod < SMALL_SOURCE_IOD:
            self._notice(f"source image #{number}: the face is small ({iod:.0f} px between the eyes), so the swap is "
                         "upscaled and soft; a photo with at least 80 px between the eyes gives a sharper face")
        elif fine_detail(prepared.image, prepared.shape.points) < BLURRED_SOURCE_DETAIL:
            self._notice(f"source image #{number}: the face is blurred (little fine detail even at its own size), so "
                         "the swap is soft and less like the person; a sharp photo gives a truer face")
        turn = landmark_turn(prepared.shape.points, self.topology)
        if turn > TURNED_SOURCE_YAW:
            self._notice(f"source image #{number}: the face is turned {turn:.0f}°; its far side is filled in from "
                         "the near side — a frontal photo gives a truer face")

    def reset(self) -> None:
        """Forget every per-track estimate: light, gaze, occluders and feature move (a new clip, chunk or source)."""
        self._light.clear()
        self._gaze.clear()
        self._masks.clear()
        self._moves.clear()
        self._since_turned.clear()

    def choose_source(self, target: Face) -> int:
        """Index of the source photo whose head pose and mouth state are closest to the target's."""
        return closest_source(self._signatures, target)

    def process(self, frame: np.ndarray, faces: list[Face], source: SourceIdentity | None) -> np.ndarray:
        """The frame with every given face replaced by the source's."""
        # a frame has passed for every track held back as turned too far, seen in this one or not
        self._since_turned = {track: n + 1 for track, n in self._since_turned.items() if n + 1 < TURN_HOLD + TURN_FADE}
        if source is None or not faces:
            return frame
        self.require_files()
        self._prepare(source)
        out = frame.copy()
        for face in faces:
            if face.landmarks is not None:
                self._swap_one(out, face)
        seen = {face.track_id for face in faces}
        self._masks = {track: kept for track, kept in self._masks.items() if track in seen}  # memory stays flat
        self._moves = {track: kept for track, kept in self._moves.items() if track in seen}
        return out

    def _swap_one(self, out: np.ndarray, target: Face) -> None:
        assert target.landmarks is not None
        shape = face_shape(out, target.landmarks, target.depth, self.topology)
        strength = self._turn_strength(landmark_turn(shape.points, self.topology), target.track_id)
        if strength <= 0:
            self._notice(f"a face turned more than {MAX_TARGET_YAW:.0f}° (nearly a profile) was left unchanged: the "
                         "built-in swapper would draw it smeared")
            return
        chosen = self._sources[self.choose_source(target)]
        occluders = self._occluders(out, target, shape)  # found where they are: they stay put if the face is reshaped
        kept = occluders.pixels(out)
        shape = self._reshaped(out, shape, chosen, target.depth, target.track_id)
        shape = self._smoothed(out, shape, target.track_id)
        settings = self.settings if strength >= 1 else dataclasses.replace(self.settings, weight=self.settings.weight * strength)
        render_face(out, shape, chosen, self.topology, settings, occluders.frame_mask(out.shape) if occluders.found else None)
        occluders.restore(out, kept)

    def _turn_strength(self, turn: float, track_id: int | None) -> float:
        """How much of the swap a face turned ``turn`` degrees (``landmark_turn``) gets: 0 beyond
        MAX_TARGET_YAW; a video track read beyond it stays at 0 for TURN_HOLD frames, then fades back to 1 over
        TURN_FADE frames (its readings swing from frame to frame, and a swap that came and went would flicker)."""
        if turn > MAX_TARGET_YAW:
            if track_id is not None:
                self._since_turned[track_id] = 0
            return 0.0
        if track_id is None or track_id not in self._since_turned:
            return 1.0
        return max(self._since_turned[track_id] - TURN_HOLD, 0) / TURN_FADE

    def _reshaped(self, out: np.ndarray, shape: FaceShape, chosen: SourceFace, depth: np.ndarray | None,
                  track_id: int | None) -> FaceShape:
        """The target face in ``out`` warped (in place) toward the source's shape as the options ask: features
        placed as the source's inside the face (in video, the move is smoothed over time per track, in eye
        distances, so landmark noise and passing expressions do not shake it), and the outline moved (with
        its surroundings)."""
        features, outline = float(self.options.face_feature_transfer), float(self.options.face_shape_transfer)
        if features <= 0 and outline <= 0:
            return shape
        reshaped = shape.points[:, :2]
        if features > 0:
            reshaped = placed_features(shape.points, chosen.shape.points, self._layout, features)
            if track_id is not None:
                move = (reshaped - shape.points[:, :2]) / shape.interocular
                previous = self._moves.get(track_id)
                if previous is not None:
                    move = (1 - MOVE_SMOOTHING) * previous + MOVE_SMOOTHING * move
                self._moves[track_id] = move
                reshaped = (shape.points[:, :2] + move * shape.interocular).astype(np.float32)
        if outline > 0:
            moved = np.c_[reshaped, shape.points[:, 2]]
            reshaped = reshaped_points(moved, chosen.shape.points, self.topology, outline)
            out[:] = warp_to_shape(out, shape.points[:, :2], reshaped, shape.interocular)
            return face_shape(out, reshaped, depth, self.topology)  # the surroundings moved: light fitted anew
        warp_inside(out, shape.points[:, :2], reshaped, self.topology.triangles, shape.points[:, 2], self._shown)
        return moved_shape(shape, reshaped, self.topology)

    def _occluders(self, frame: np.ndarray, target: Face, shape: FaceShape) -> Occluders:
        """What lies in front of the target face: glasses frames, hair across it and anything held in front of its
        lower face (a track's estimate is refreshed every OCCLUDER_REFRESH frames, on the face's eye-aligned crop, so it
        follows the head between), and what the XSeg model finds when ``occlusion`` is asked for."""
        track = target.track_id
        cached = self._masks.get(track) if track is not None else None
        if cached is None or cached[0] >= OCCLUDER_REFRESH:
            lower = FaceCrop.of(frame, shape.points, HELD_CROP_EXTENT)  # the face crop reaching on past the chin
            crop = lower.top(CROP_EXTENT)
            age = 0
            frames = glasses_frames(crop.image, crop.points, self.topology)
            hair = hair_across(crop.image, crop.points, self.topology)
            shading = evaluate_shading(shape.light, shape.normals)
            held = held_in_front(lower, shape.points[:, 2], self.topology, shading, shape.interocular)
        else:
            age, frames, hair, held = cached
        if track is not None:
            self._masks[track] = (age + 1, frames, hair, held)
        # masks of a few frames back come to the frame through today's alignment (the taller crop shares it)
        affine = eye_alignment(shape.points)
        found = masks_to_frame(frames, hair, affine, frame.shape).union(
            masks_to_frame(np.zeros_like(held), held, affine, frame.shape))
        if self.occlusion is not None:
            template, size = OCCLUDER_CROP
            image, affine = warp_face(frame, target.keypoints, template, size)
            found = found.union(from_visibility(self.occlusion.masks(image[None])[0], affine, frame.shape))
        return found

    def _smoothed(self, frame: np.ndarray, shape: FaceShape, track_id: int | None) -> FaceShape:
        """The target's light and gaze, smoothed over time per track so the face does not flicker and its eyes
        do not twitch (the gaze is followed in eye widths from each lid ring's centre; a frame where an iris
        is not seen keeps the last one)."""
        if track_id is None:
            return shape
        light = shape.light
        previous = self._light.get(track_id)
        if previous is not None:
            light = (1 - LIGHT_SMOOTHING) * previous + LIGHT_SMOOTHING * light
        self._light[track_id] = light
        rings = (shape.points[RIGHT_EYE_RING], shape.points[LEFT_EYE_RING])
        seen = [None if iris is None else in_eye_units(iris, ring) for iris, ring in zip(find_irises(frame, shape.points), rings)]
        before = self._gaze.get(track_id, (None, None))
        gaze = tuple(old if new is None else new if old is None else (1 - GAZE_SMOOTHING) * old + GAZE_SMOOTHING * new
                     for old, new in zip(before, seen))
        self._gaze[track_id] = gaze
        right, left = (None if offset is None else from_eye_units(offset, ring) for offset, ring in zip(gaze, rings))
        return dataclasses.replace(shape, light=light, irises=(right, left))

"""Head pose read off the 3D face mesh: yaw, pitch and roll in degrees, for the renderer and source choice."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from swapface.faces.mesh_topology import CHIN, FOREHEAD, LEFT_EYE_RING, RIGHT_EYE_RING


@dataclass(frozen=True)
class HeadPose:
    """Angles of the head in the camera's frame (x right, y down, z away from the camera), in degrees.

    ``yaw`` > 0: the nose points to the image's right; ``pitch`` > 0: the head bows (chin back, forehead
    forward); ``roll`` > 0: the head tilts clockwise in the image (the image-right eye is lower).
    """

    yaw: float
    pitch: float
    roll: float


def _unit(v: np.ndarray) -> np.ndarray:
    return v / max(float(np.linalg.norm(v)), 1e-9)


def head_pose(landmarks: np.ndarray, depth: np.ndarray) -> HeadPose:
    """The pose of a 468-point mesh given its per-landmark depth (frame pixels, larger = farther)."""
    mesh = np.concatenate([np.asarray(landmarks, np.float64), np.asarray(depth, np.float64)[:, None]], axis=1)
    across = _unit(mesh[LEFT_EYE_RING].mean(0) - mesh[RIGHT_EYE_RING].mean(0))  # image-left eye → image-right eye
    down = mesh[CHIN] - mesh[FOREHEAD]
    down = _unit(down - across * float(down @ across))
    yaw = math.degrees(math.atan2(across[2], math.hypot(across[0], across[1])))
    roll = math.degrees(math.atan2(across[1], across[0]))
    pitch = math.degrees(math.atan2(down[2], math.hypot(down[0], down[1])))
    return HeadPose(yaw=yaw, pitch=pitch, roll=roll)

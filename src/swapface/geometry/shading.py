"""Face shading from the 3D mesh: visibility, normals and a first-order spherical-harmonics light per face.

A face's observed colour is albedo × shading; with the mesh's normals, the shading of each colour
channel is fitted as a linear function of the normal (constant + directional term: the first two bands
of spherical harmonics, in linear RGB) on plain-skin vertices only. Dividing by the source's shading and
multiplying by the target's re-lights the source's skin under the target's light and tone.
"""

from __future__ import annotations

import cv2
import numpy as np

_SRGB_TO_LINEAR = ((np.arange(256, dtype=np.float32) / 255.0) ** 2.2).astype(np.float32)


def to_linear(image: np.ndarray) -> np.ndarray:
    """8-bit sRGB → linear float32 (gamma 2.2, by lookup)."""
    return cv2.LUT(image, _SRGB_TO_LINEAR)


def to_srgb(linear: np.ndarray) -> np.ndarray:
    """Linear float32 → 8-bit sRGB."""
    out = np.power(np.clip(linear, 0.0, 1.0), 1 / 2.2)
    out *= 255.0
    out += 0.5
    return out.astype(np.uint8)


def mesh_points(landmarks: np.ndarray, depth: np.ndarray | None) -> np.ndarray:
    """The (468, 3) mesh in frame pixels (x right, y down, z away from the camera); flat where depth is unknown."""
    z = np.zeros(len(landmarks), np.float32) if depth is None else depth
    return np.c_[landmarks, z].astype(np.float32)


def triangle_facing(points: np.ndarray, triangles: np.ndarray) -> np.ndarray:
    """Per triangle, the cosine between its outward normal and the direction to the camera (< 0: faces away).

    Triangles are counter-clockwise on the canonical layout, so a triangle whose 2D orientation flips
    has turned away; the 2D signed area over the 3D area is the foreshortening (1 = faces the camera).
    """
    p = points[triangles].astype(np.float64)
    e1, e2 = p[:, 1] - p[:, 0], p[:, 2] - p[:, 0]
    cross = np.cross(e1, e2)
    area3 = np.linalg.norm(cross, axis=1)
    return np.where(area3 > 1e-9, cross[:, 2] / np.maximum(area3, 1e-9), 0.0).astype(np.float32)


def vertex_normals(points: np.ndarray, triangles: np.ndarray) -> np.ndarray:
    """Unit normals per vertex (area-weighted mean of its triangles'), pointing toward the camera (z < 0)."""
    p = points[triangles].astype(np.float64)
    # counter-clockwise triangles (y down, z away) have their cross product pointing into the face: negate
    face_n = -np.cross(p[:, 1] - p[:, 0], p[:, 2] - p[:, 0])
    normals = np.zeros((len(points), 3))
    for k in range(3):
        np.add.at(normals, triangles[:, k], face_n)
    length = np.linalg.norm(normals, axis=1, keepdims=True)
    normals = np.where(length > 1e-9, normals / np.maximum(length, 1e-9), (0.0, 0.0, -1.0))
    return normals.astype(np.float32)


def sh_basis(normals: np.ndarray) -> np.ndarray:
    """First-order spherical-harmonics basis (1, nx, ny, nz) per normal: (N, 4)."""
    return np.c_[np.ones(len(normals), np.float32), normals].astype(np.float32)


def fit_shading(colours: np.ndarray, normals: np.ndarray, *, ridge: float = 0.01) -> np.ndarray:
    """(4, 3) coefficients of shading per linear-RGB channel from vertex colours and normals.

    Robust: a ridge-regularised least-squares fit, refitted once without the vertices whose luminance
    residual is far off (specular spots, stray shadows, a stray hair).
    """
    basis = sh_basis(normals).astype(np.float64)
    values = colours.astype(np.float64)
    keep = np.ones(len(values), bool)
    coeffs = np.zeros((4, 3))
    for _ in range(2):
        if keep.sum() < 6:
            coeffs = np.zeros((4, 3))
            coeffs[0] = np.median(values, axis=0) if len(values) else 0.2
            return coeffs.astype(np.float32)
        b, v = basis[keep], values[keep]
        reg = np.diag([0.0, ridge, ridge, ridge]) * len(b)
        coeffs = np.linalg.solve(b.T @ b + reg, b.T @ v)
        residual = np.abs((basis @ coeffs - values).mean(1))
        keep = residual <= max(2.5 * float(np.median(residual[keep])), 1e-4)
    return coeffs.astype(np.float32)


def evaluate_shading(coeffs: np.ndarray, normals: np.ndarray) -> np.ndarray:
    """Shading (N, 3), linear RGB, of the fitted light at the given normals.

    Kept within [0.3, 2] × the light's constant term: a linear fit extrapolated to normals it never saw
    (the far side of a turned face) must not reach zero, which would blow up the albedo.
    """
    ambient = np.maximum(coeffs[0], 1e-3)
    return np.clip(sh_basis(normals) @ coeffs, 0.3 * ambient, 2.0 * ambient).astype(np.float32)

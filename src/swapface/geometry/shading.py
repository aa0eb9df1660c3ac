"""Face shading from the 3D mesh: visibility, normals and a first-order spherical-harmonics light per face.

A face's observed colour is albedo × shading; with the mesh's normals, the shading of each colour
channel is fitted as a linear function of the normal (constant + directional term: the first two bands
of spherical harmonics, in linear RGB) on plain-skin vertices only. Dividing by the source's shading and
multiplying by the target's re-lights the source's skin under the target's light and tone. The fit's
limits are measured from its light facing the camera: its constant term alone is not the face's level
(a light from the camera puts most of the brightness in the normal's z term).
"""

from __future__ import annotations

import cv2
import numpy as np

_SRGB_TO_LINEAR = ((np.arange(256, dtype=np.float32) / 255.0) ** 2.2).astype(np.float32)
MIN_FRONTAL = 0.25  # least plausible light facing the camera, as a share of the skin's median colour


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
    cx, cy, cz = _edge_cross(points, triangles)
    area3 = np.sqrt(cx * cx + cy * cy + cz * cz)
    return np.where(area3 > 1e-9, cz / np.maximum(area3, 1e-9), 0.0).astype(np.float32)


def vertex_normals(points: np.ndarray, triangles: np.ndarray) -> np.ndarray:
    """Unit normals per vertex (area-weighted mean of its triangles'), pointing toward the camera (z < 0)."""
    # counter-clockwise triangles (y down, z away) have their cross product pointing into the face: negate
    count = len(points)
    normals = np.stack([sum(np.bincount(triangles[:, k], -component, minlength=count) for k in range(3))
                        for component in _edge_cross(points, triangles)], axis=1)
    length = np.linalg.norm(normals, axis=1, keepdims=True)
    normals = np.where(length > 1e-9, normals / np.maximum(length, 1e-9), (0.0, 0.0, -1.0))
    return normals.astype(np.float32)


def _edge_cross(points: np.ndarray, triangles: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per triangle, the x, y and z of the cross product of its edges from corner 0 (float64), written out:
    numpy's general ``cross`` and ``add.at`` cost more than the arithmetic on a mesh this size."""
    p = points[triangles].astype(np.float64)
    e1, e2 = p[:, 1] - p[:, 0], p[:, 2] - p[:, 0]
    return (e1[:, 1] * e2[:, 2] - e1[:, 2] * e2[:, 1], e1[:, 2] * e2[:, 0] - e1[:, 0] * e2[:, 2],
            e1[:, 0] * e2[:, 1] - e1[:, 1] * e2[:, 0])


def sh_basis(normals: np.ndarray) -> np.ndarray:
    """First-order spherical-harmonics basis (1, nx, ny, nz) per normal: (N, 4)."""
    return np.c_[np.ones(len(normals), np.float32), normals].astype(np.float32)


def fit_shading(colours: np.ndarray, normals: np.ndarray, *, ridge: float = 0.01) -> np.ndarray:
    """(4, 3) coefficients of shading per linear-RGB channel from vertex colours and normals.

    Robust: a ridge-regularised least-squares fit, refitted once without the vertices whose luminance
    residual is far off (specular spots, stray shadows, a stray hair). A fit whose light facing the camera
    is not plausible (under ``MIN_FRONTAL`` of the skin's median colour in some channel: a dim face, a hand or
    hair among the skin) gives way to a constant light.
    """
    basis = sh_basis(normals).astype(np.float64)
    values = colours.astype(np.float64)
    if len(values) < 6:
        return _constant(values, basis.shape[1])
    coeffs = _robust_fit(basis, values, ridge)
    if coeffs is None or (frontal_level(coeffs) < MIN_FRONTAL * np.median(values, axis=0)).any():
        return _constant(values, basis.shape[1])
    return coeffs.astype(np.float32)


def _robust_fit(basis: np.ndarray, values: np.ndarray, ridge: float) -> np.ndarray | None:
    """The coefficients fitted, refitted once without far-off vertices (None when too few are left)."""
    keep = np.ones(len(values), bool)
    for _ in range(2):
        if keep.sum() < 6:
            return None
        b, v = basis[keep], values[keep]
        reg = np.diag([0.0] + [ridge] * (basis.shape[1] - 1)) * len(b)
        coeffs = np.linalg.solve(b.T @ b + reg, b.T @ v)
        residual = np.abs((basis @ coeffs - values).mean(1))
        keep = residual <= max(2.5 * float(np.median(residual[keep])), 1e-4)
    return coeffs


def _constant(values: np.ndarray, terms: int) -> np.ndarray:
    """A light the same from every direction: the skin's median colour (0.2 grey when there is none)."""
    coeffs = np.zeros((terms, 3), np.float32)
    coeffs[0] = np.median(values, axis=0) if len(values) else 0.2
    return coeffs


def frontal_level(coeffs: np.ndarray) -> np.ndarray:
    """(3,) the fitted light's shading of a surface facing the camera: the level its clamp is measured from."""
    return (sh_basis(np.array([[0.0, 0.0, -1.0]], np.float32)) @ coeffs)[0]


def evaluate_shading(coeffs: np.ndarray, normals: np.ndarray) -> np.ndarray:
    """Shading (N, 3), linear RGB, of the fitted light at the given normals.

    Kept within [0.3, 2] × the light's level facing the camera: a fit extrapolated to normals it never saw
    (the far side of a turned face) must not reach zero, which would blow up the albedo.
    """
    level = np.maximum(frontal_level(coeffs), 1e-3)
    return np.clip(sh_basis(normals) @ coeffs, 0.3 * level, 2.0 * level).astype(np.float32)

"""Named points of the 468-point face mesh (subject's right eye is on the image's left in a frontal face)."""

from __future__ import annotations

RIGHT_EYE_RING = [33, 7, 163, 144, 145, 153, 154, 155, 133, 173, 157, 158, 159, 160, 161, 246]
LEFT_EYE_RING = [263, 249, 390, 373, 374, 380, 381, 382, 362, 398, 384, 385, 386, 387, 388, 466]
NOSE_TIP = 1
MOUTH_RIGHT_CORNER = 61  # subject's right = image left
MOUTH_LEFT_CORNER = 291
MOUTH_CENTRE = [13, 14]
FOREHEAD = 10  # top of the face oval, on the midline
CHIN = 152  # bottom of the face oval, on the midline

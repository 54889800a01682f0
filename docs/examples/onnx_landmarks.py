"""68 landmarks on a photo with only numpy, OpenCV and onnxruntime: the exported face solver.

First, with selfiter installed, export the solver and save its mean start:

    selfiter export examples/face300w_encoded.yaml --format onnx -o face.onnx
    python -c "import numpy, selfiter; m = selfiter.load('face300w'); \
numpy.save('theta0.npy', m.initial_theta(1).numpy()); print(m.problem.frame_size, m.problem.box_scale)"

then, anywhere:

    python onnx_landmarks.py face.onnx theta0.npy photo.jpg X0 Y0 X1 Y1
"""

from __future__ import annotations

import sys

import cv2
import numpy as np
import onnxruntime

FRAME = 128  # problem.params.frame_size of the model's config
BOX_SCALE = 1.4  # problem.params.box_scale


def frame_affine(box: tuple[float, float, float, float]) -> np.ndarray:
    """The 2 x 3 affine taking frame px to image px for a face box ``(x0, y0, x1, y1)``:
    a square of BOX_SCALE times the box's longer side, centred on the box."""
    x0, y0, x1, y1 = box
    side = BOX_SCALE * max(x1 - x0, y1 - y0)
    a = side / FRAME  # image px per frame px
    # frame x = -0.5 (the frame's left edge) lands on the square's left edge
    tx = (x0 + x1) / 2 - side / 2 + a / 2
    ty = (y0 + y1) / 2 - side / 2 + a / 2
    return np.array([[a, 0.0, tx], [0.0, a, ty]])


def cut_frame(image: np.ndarray, affine: np.ndarray) -> np.ndarray:
    """The face frame, ``(FRAME, FRAME, 3)`` uint8: as in training, where the frame is more
    than twice coarser than the photo, the photo is first area-averaged down by the whole
    factor ``n`` (blocks of n x n pixels from the top-left corner)."""
    scale = affine[0, 0]
    if scale > 2.0:
        n = int(scale)
        h, w = image.shape[:2]
        image = cv2.resize(image[: h // n * n, : w // n * n], (w // n, h // n),
                           interpolation=cv2.INTER_AREA)
        affine = np.hstack([affine[:, :2] / n, affine[:, 2:] / n + (1 / n - 1) / 2])
    return cv2.warpAffine(image, affine, (FRAME, FRAME), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=0)


def landmarks(session: onnxruntime.InferenceSession, theta0: np.ndarray, rgb: np.ndarray,
              box: tuple[float, float, float, float]) -> np.ndarray:
    """68 (x, y) points in image px (0-based pixel centres) of the face in ``box``."""
    affine = frame_affine(box)
    frame = cut_frame(rgb, affine)
    inputs = frame.transpose(2, 0, 1)[None].copy()  # (1, 3, S, S) uint8, RGB
    theta, _trajectory = session.run(None, {"inputs": inputs, "theta0": theta0.astype(np.float32)})
    pts = theta.reshape(-1, 2).astype(np.float64)  # frame px, (x1, y1, x2, y2, ...)
    return pts @ affine[:, :2].T + affine[:, 2]


if __name__ == "__main__":
    onnx_file, theta0_file, photo, *box = sys.argv[1:]
    sess = onnxruntime.InferenceSession(onnx_file, providers=["CPUExecutionProvider"])
    rgb = cv2.cvtColor(cv2.imread(photo), cv2.COLOR_BGR2RGB)
    for x, y in landmarks(sess, np.load(theta0_file), rgb, tuple(map(float, box))):
        print(f"{x:.2f} {y:.2f}")

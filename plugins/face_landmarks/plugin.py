"""Hook implementations of the face_landmarks plugin.

Components are imported inside the hooks: importing the plugin stays cheap,
and a missing optional part fails only when it is asked for.
"""

from __future__ import annotations

from pathlib import Path

from selfiter.hookspecs import hookimpl
from selfiter.plugins import Lazy

#: the pretrained 300-W solver, present only in builds that ship it
PRETRAINED = Path(__file__).resolve().parent / "models" / "face300w.safetensors"


@hookimpl
def register_problems(register):
    from face_landmarks.problem import Face300W

    register("face300w", Face300W)


@hookimpl
def register_parameter_models(register):
    from face_landmarks.shape_model import PcaSimilarityModel

    register("pca_similarity", PcaSimilarityModel)


@hookimpl
def register_feature_extractors(register):
    from face_landmarks.patches import PatchExtractor

    register("patches", PatchExtractor)


@hookimpl
def register_regressors(register):
    from face_landmarks.networks.lan import LandmarksAttentionNetwork
    from face_landmarks.networks.stack import StackNetwork

    register("lan", LandmarksAttentionNetwork)
    register("lan_stack", StackNetwork)


@hookimpl
def register_kinds(register):
    from face_landmarks.hookspecs import register_detectors as detectors_spec

    register("detector", detectors_spec)


@hookimpl
def register_detectors(register):
    # lazy: OpenCV is imported when a detector is used, not when any component is looked up
    register("haar", Lazy("face_landmarks.detection:HaarFaceDetector"))


@hookimpl
def register_commands(register):
    from face_landmarks import cli_landmarks, cli_track

    register("landmarks", "68 facial landmarks on every face of photos (JSON, overlays)",
             cli_landmarks.configure, cli_landmarks.run)
    register("track", "68 facial landmarks through a video, frame to frame (CSV, annotated video)",
             cli_track.configure, cli_track.run)


@hookimpl
def register_models(register):
    if PRETRAINED.is_file():
        register("face300w", PRETRAINED)

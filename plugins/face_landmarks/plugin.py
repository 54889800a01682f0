"""Hook implementations of the face_landmarks plugin.

Components are imported inside the hooks: importing the plugin stays cheap,
and a missing optional part fails only when it is asked for.
"""

from __future__ import annotations

from pathlib import Path

from selfiter.hookspecs import hookimpl
from selfiter.plugins import Lazy

#: the folder of the pretrained 300-W solvers, each registered only when its file is there
MODELS = Path(__file__).resolve().parent / "models"
#: model name -> file in MODELS: the default (the encoded-grid model, trained on a CPU)
#: and the paper's Landmarks-Attention Network, the reference system
PRETRAINED = {"face300w": "face300w.safetensors", "face300w_lan": "face300w_lan.safetensors"}


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
    from face_landmarks.encoded_grid import EncodedGridExtractor
    from face_landmarks.patches import PatchExtractor

    register("patches", PatchExtractor)
    register("encoded_grid", EncodedGridExtractor)


@hookimpl
def register_regressors(register):
    from face_landmarks.networks.landmark_mlp import LandmarkMLP
    from face_landmarks.networks.lan import LandmarksAttentionNetwork
    from face_landmarks.networks.stack import StackNetwork

    register("lan", LandmarksAttentionNetwork)
    register("lan_stack", StackNetwork)
    register("landmark_mlp", LandmarkMLP)


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
    for name, file in PRETRAINED.items():
        if (MODELS / file).is_file():
            register(name, MODELS / file)

"""Hook implementations of the face_landmarks plugin.

Components are registered as :class:`~selfiter.plugins.Lazy` references: importing
the plugin, or looking up another problem's components, imports none of them
(no OpenCV for a curve-fitting config), and a missing optional part fails only
when it is asked for.
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
    register("face300w", Lazy("face_landmarks.problem:Face300W"))


@hookimpl
def register_parameter_models(register):
    register("pca_similarity", Lazy("face_landmarks.shape_model:PcaSimilarityModel"))


@hookimpl
def register_feature_extractors(register):
    register("patches", Lazy("face_landmarks.patches:PatchExtractor"))
    register("encoded_grid", Lazy("face_landmarks.encoded_grid:EncodedGridExtractor"))


@hookimpl
def register_regressors(register):
    register("lan", Lazy("face_landmarks.networks.lan:LandmarksAttentionNetwork"))
    register("lan_stack", Lazy("face_landmarks.networks.stack:StackNetwork"))
    register("landmark_mlp", Lazy("face_landmarks.networks.landmark_mlp:LandmarkMLP"))


@hookimpl
def register_kinds(register):
    from face_landmarks.hookspecs import register_detectors as detectors_spec

    register("detector", detectors_spec)


@hookimpl
def register_detectors(register):
    # lazy: OpenCV, dlib and mediapipe are imported when a detector is built, not when any
    # component is looked up; a missing optional package fails then, naming its pip command
    register("haar", Lazy("face_landmarks.detectors.haar:HaarFaceDetector"))
    register("dlib_hog", Lazy("face_landmarks.detectors.dlib_hog:DlibHogDetector"))
    register("dlib_mmod", Lazy("face_landmarks.detectors.dlib_mmod:DlibMmodDetector"))
    register("blazeface_short", Lazy("face_landmarks.detectors.blazeface:BlazeFaceShort"))
    register("blazeface_full", Lazy("face_landmarks.detectors.blazeface:BlazeFaceFull"))
    register("mtcnn", Lazy("face_landmarks.detectors.mtcnn:MtcnnDetector"))


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

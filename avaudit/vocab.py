"""The words avaudit's outputs and options are made of: layers, groups, rules, skip reasons.

Imports nothing, so the CLI's `--help` and every other module can share one definition.
"""
from enum import StrEnum


class Layer(StrEnum):
    """The five event-specific layers, in the paper's order (logits are (N, 5, C) in this order)."""
    continuous = "continuous"
    instant = "instant"
    onset = "onset"
    visual = "visual"
    audio = "audio"


class Group(StrEnum):
    """What a category's label needs: sight and sound together, one of them, or either alone."""
    audiovisual = "audiovisual"
    audio = "audio"
    visual = "visual"
    redundant = "redundant"


class Rule(StrEnum):
    """paper: the layer most confident in the true label; sufficiency: does one modality suffice."""
    paper = "paper"
    sufficiency = "sufficiency"


class Confidence(StrEnum):
    """raw: the paper's softmax; calibrated: per-layer temperatures fitted on validation."""
    raw = "raw"
    calibrated = "calibrated"


class NoAudio(StrEnum):
    """What to do with a clip that has no sound track."""
    skip = "skip"
    silence = "silence"


class Decoder(StrEnum):
    """What decodes a clip's frames (its sound is always PyAV's)."""
    pyav = "pyav"  # PyAV (FFmpeg 8): the right frame at every step of every container measured
    decord = "decord"  # decord 0.6.0 where it times the file; PyAV where it cannot (AVI, AV1, ...)


class Device(StrEnum):
    """Where the network runs."""
    auto = "auto"
    cpu = "cpu"
    cuda = "cuda"


class LabelPolicy(StrEnum):
    """What an audit does with DATA's labels (decided before anything is decoded)."""
    require = "require"  # it judges each video against its label: unlabelled videos are skipped (`no label`)
    check = "check"  # it compares where there are labels; a label the model does not know is an error
    ignore = "ignore"  # it does not compare: a note says which classes the model knows


class By(StrEnum):
    """What retarget keeps whole: categories, or single videos."""
    category = "category"
    video = "video"


class Skip(StrEnum):
    """Why a row was not audited: the `reason` column of skipped.csv."""
    missing_file = "missing file"
    unreadable_file = "unreadable file"
    unreadable_container = "unreadable container"
    no_video_stream = "no video stream"
    no_audio_stream = "no audio stream"
    too_short = "too short"
    too_long = "too long"
    decode_error = "decode error"
    decode_timeout = "decode timeout"
    decoder_crashed = "decoder crashed"
    non_finite = "non-finite output"
    duplicate_id = "duplicate id"
    malformed_row = "malformed row"
    outside_root = "outside root"
    bad_name = "non-UTF-8 name"
    no_label = "no label"
    bad_label = "bad label"


LAYERS = tuple(str(layer) for layer in Layer)
AV_LAYERS = LAYERS[:3]  # the audio-visual event layers
LAYER_GROUP = {**dict.fromkeys(AV_LAYERS, str(Group.audiovisual)), str(Layer.visual): str(Group.visual),
               str(Layer.audio): str(Group.audio)}
ASSIGNMENTS = (*LAYERS, str(Group.redundant))  # what a video or category can be assigned to
UNCLEAR_TYPE = str(Group.audiovisual)  # a category's layer when no audio-visual layer leads by the type margin
UNCLEAR = "unclear"  # a category's layer and group when its own videos do not settle the group
# A category's layer in Table 3: an event type, audio-visual of unclear type, a modality, either alone, or unclear.
CATEGORY_ASSIGNMENTS = (*AV_LAYERS, UNCLEAR_TYPE, *LAYERS[len(AV_LAYERS):], str(Group.redundant), UNCLEAR)
GROUP_OF = {**LAYER_GROUP, UNCLEAR_TYPE: UNCLEAR_TYPE, str(Group.redundant): str(Group.redundant), UNCLEAR: UNCLEAR}
GROUPS = tuple(str(group) for group in Group)
SKIPPED_COLUMNS = ("video_id", "path", "reason", "detail")
QUALITY_FLAGS = ("still", "silent", "duplicate")  # a clip's quality flags (avaudit.flags); what retarget --drop takes


def plural(n: int, word: str, words: str | None = None) -> str:
    """'1 video', '2 videos', '19,906 files': a count and its noun, agreed."""
    return f"{n:,} {word if n == 1 else words or word + ('es' if word.endswith(('s', 'sh', 'ch', 'x')) else 's')}"

"""Why a clip cannot be audited: one exception per skip reason, shared by both decoders."""
from __future__ import annotations

from avaudit.errors import AvauditError
from avaudit.vocab import Skip

# Decoders conceal a broken packet by repeating or smearing frames. Over this share of broken
# frames (decord's fault_tol) or packets (PyAV) the file is a decode error, not an audit of garbage.
FAULT_TOLERANCE = 0.05


class MediaError(AvauditError):
    """A clip that cannot be audited; `reason` is one of a fixed list, `str()` the detail."""

    reason = Skip.decode_error


class MissingFile(MediaError):
    reason = Skip.missing_file


class OutsideRoot(MediaError):
    """A file a row names outside the folder it may be read from (a Parquet cell's path), not allowed."""
    reason = Skip.outside_root


class NoVideoStream(MediaError):
    """No video stream, or only a cover picture (an MP3's attached picture is no video)."""
    reason = Skip.no_video_stream


class NoAudioStream(MediaError):
    reason = Skip.no_audio_stream


class DecodeError(MediaError):
    reason = Skip.decode_error


class UnreadableFile(MediaError):
    """The file system refuses it: no permission, a symlink loop, an I/O error."""
    reason = Skip.unreadable_file


class UnreadableContainer(MediaError):
    """The bytes are no media container FFmpeg can open: empty, truncated, not a video at all."""
    reason = Skip.unreadable_container


class TooShort(MediaError):
    reason = Skip.too_short


class TooLong(MediaError):
    reason = Skip.too_long


class DecodeTimeout(MediaError):
    reason = Skip.decode_timeout


# The fixed list of reasons decoding gives (manifest rows add their own three, a dead decoding
# process `decoder crashed`).
REASONS = tuple(cls.reason for cls in (MissingFile, UnreadableFile, UnreadableContainer, NoVideoStream,
                                       NoAudioStream, TooShort, TooLong, DecodeError, DecodeTimeout))

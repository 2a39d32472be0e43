"""Why a clip cannot be audited: one exception per skip reason."""
from __future__ import annotations

from avaudit.errors import AvauditError
from avaudit.vocab import Skip

# decord silently repeats frames it could not decode unless told otherwise; more than this
# share of recovered frames makes the file a decode error instead of an audit of garbage.
FAULT_TOLERANCE = 0.05


class MediaError(AvauditError):
    """A clip that cannot be audited; `reason` is one of a fixed list, `str()` the detail."""

    reason = Skip.decode_error


class MissingFile(MediaError):
    reason = Skip.missing_file


class NoVideoStream(MediaError):
    reason = Skip.no_video_stream


class NoAudioStream(MediaError):
    reason = Skip.no_audio_stream


class DecodeError(MediaError):
    reason = Skip.decode_error


class UnreadableFile(MediaError):
    """The file system refuses it: no permission, a symlink loop, an I/O error."""
    reason = Skip.unreadable_file


class UnreadableContainer(MediaError):
    """The bytes are no media container decord can open: empty, truncated, not a video at all."""
    reason = Skip.unreadable_container


class TooShort(MediaError):
    reason = Skip.too_short


class TooLong(MediaError):
    """Guards memory: decord's audio reader decodes the whole file's sound at once."""
    reason = Skip.too_long


class DecodeTimeout(MediaError):
    reason = Skip.decode_timeout


# The fixed list of reasons a video can be skipped for (manifest rows add their own three).
REASONS = tuple(cls.reason for cls in (MissingFile, UnreadableFile, UnreadableContainer, NoVideoStream,
                                       NoAudioStream, TooShort, TooLong, DecodeError, DecodeTimeout))

"""Every side effect of a journey: the database, holdout assignment, sends.

Activities are plain methods on small classes that hold their dependencies (the store), so the
worker builds them once and tests can build them against any database.
"""

from activities.entry import EntryActivities
from activities.recording import RecordingActivities
from activities.sending import SendingActivities
from activities.store import Store

__all__ = ["EntryActivities", "RecordingActivities", "SendingActivities", "Store"]

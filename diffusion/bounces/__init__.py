"""What mail systems send back: bounces, complaints, auto-replies and emailed unsubscribes.

Recognition (`recognise`, `dsn`, `arf`, `autoreply`) turns a message into plain `events`; one
step (`apply`) changes state; `sources` reads mailboxes and `process` ties them together.
"""

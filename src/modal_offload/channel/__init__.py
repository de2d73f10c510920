"""The persistent session channel (issue 17): one long-lived agent per session, kept by the
session host, carrying every command of that session as frames over the agent's own
stdin/stdout instead of one backend `exec` each.

frames.py  the wire format (both ends)
agent.py   the remote end: runs commands as its children, watches the tree (inotify)
client.py  the host end: `ChannelSession`, a Session whose exec goes over the channel and
           falls back to the backend's own exec when the channel is not (or no longer) up
"""

"""The git seam: the only code that runs git on a tree a session's agent can write.

Host git never opens such a tree: its config (``core.fsmonitor``, filters, a pager),
``.git/info/attributes``, ``commondir`` and index are all ways for the agent to run
code here. So every read of a session's repository (the delete guard, `mux diff`,
`mux fetch`) runs git in the "git box" (:mod:`mux.workspace.gitbox`): a throwaway
container on the session's engine, offline, with the tree mounted read-only, as the
session's uid, no capabilities, and git itself hardened. What comes out is data,
bounded and validated here.

Nothing heavy is imported by this package: `mux delete` stays as cheap as a
`docker run`.
"""

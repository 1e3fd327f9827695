"""mux's credential proxy: containers reach the network through it and never hold a token.

Importing this package is cheap on purpose: only ``mux.proxy.server`` (the proxy
process itself) and ``mux.proxy.addon`` import mitmproxy, so ``mux --help``,
``mux proxy status`` and ``mux proxy stop`` stay fast.

Modules:
  settings  ``[proxy]`` and ``[credentials.*]`` tables -> frozen dataclasses
  domains   ``example.com`` / ``*.example.com`` patterns
  netinfo   the Docker bridge gateway address the proxy also listens on
  files     where the proxy keeps its files under ``<data dir>/proxy``
  registry  per-session proxy secrets (the registry the proxy checks)
  ca        mux's CA and the CA bundles
  control   start / stop / status / regenerate-ca of the background process
  session   what ``mux new`` adds to ``docker run`` (env, env-file, volume, add-host)
  cli       the ``mux proxy`` click group
  server    the proxy process (mitmproxy as a library) and ``addon`` its policy
"""

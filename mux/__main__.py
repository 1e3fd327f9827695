import sys

try:
    from mux.cli import main
except KeyboardInterrupt:  # Ctrl-C while Python is still starting: nothing was done yet
    sys.exit(130)

main()

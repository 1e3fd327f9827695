from mux.cli import main

main()

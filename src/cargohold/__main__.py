from cargohold.cli.entry import main

main()

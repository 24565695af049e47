from emberflow.cli import main

main()

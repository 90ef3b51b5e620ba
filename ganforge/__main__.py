from ganforge.cli import main

main()

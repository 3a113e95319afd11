from transferdet.cli import main

main()

from qaembed.cli import main

main()

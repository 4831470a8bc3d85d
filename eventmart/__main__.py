from eventmart.cli import main

main()

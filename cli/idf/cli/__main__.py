from idf.cli.main import main

main()

from hsmtls.cli import main

main()

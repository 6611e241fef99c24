from devstack._cli import main

main()

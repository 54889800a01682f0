from selfiter.cli.main import main

raise SystemExit(main())

from omicsfs.cli.main import main

raise SystemExit(main())

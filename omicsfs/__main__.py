from omicsfs.cli import main

raise SystemExit(main())

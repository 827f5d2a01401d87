from feedhandler.cli import main

raise SystemExit(main())

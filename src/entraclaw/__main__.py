from entraclaw.cli import main

raise SystemExit(main())

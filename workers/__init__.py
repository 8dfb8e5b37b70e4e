"""The worker side of livewatch: match events against rules, render alerts, deliver them."""

"""Where sources come from: source lists, VGGSound/VGGSounder, splits, the offline demo set."""

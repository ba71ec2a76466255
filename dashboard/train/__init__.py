"""The Train page's panels: the live view of a job and the settings it changed, in the page's own words."""

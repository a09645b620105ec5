//! Calls placed by the XML push, driven through the core in a simulated lab.

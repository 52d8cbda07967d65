//! A simulated Atlassian Cloud organization: the admin APIs (v1, v2, user management).

from django.urls import path

from suggestions import views

app_name = "suggestions"
urlpatterns = [
    path("", views.board, name="board"),
    path("new/", views.suggestion_new, name="new"),
    path("<int:suggestion_id>/", views.suggestion_detail, name="detail"),
    path("<int:suggestion_id>/edit/", views.suggestion_edit, name="edit"),
    path("<int:suggestion_id>/delete/", views.suggestion_delete, name="delete"),
    path("<int:suggestion_id>/like/", views.suggestion_like, name="like"),
    path("<int:suggestion_id>/comments/", views.comment_add, name="comment-add"),
    path("<int:suggestion_id>/comments/<int:comment_id>/delete/", views.comment_delete, name="comment-delete"),
]
